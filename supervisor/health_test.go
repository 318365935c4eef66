package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func healthConfig(t *testing.T, n int) (Config, string) {
	cfg, reports := testConfig(t, n, "health")
	cfg.StopTimeout = 5 * time.Second
	return cfg, reports
}

// A worker over --max-memory is recycled: its replacement is ready before
// it drains, and it counts as a recycle, not a restart.
func TestMemoryRecycle(t *testing.T) {
	cfg, reports := healthConfig(t, 2)
	cfg.MaxMemory = 64 << 20
	cfg.MemoryInterval = 50 * time.Millisecond
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	call(t, h.sup.Addrs()[0], "/leak?mb=128")
	h.waitLogged(t, "worker recycled", nil)
	i := h.findEntry("worker recycled", nil, true)
	e := h.logs.AllEntries()[i]
	if r := e.Data["reason"]; !strings.HasPrefix(r.(string), "memory ") || !strings.HasSuffix(r.(string), "> 64M") {
		t.Errorf("recycle reason %q, want memory N > 64M", r)
	}
	ready := h.entryIndex(t, "worker ready", logrus.Fields{"pid": e.Data["pid"]})
	drain := h.entryIndex(t, "draining worker", logrus.Fields{"pid": e.Data["replaced"]})
	if ready > drain {
		t.Error("the leaking worker drained before its replacement was ready")
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 1 · 0 restarts")
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	assertGone(t, h)
}

// A worker that stops pinging is hung: it gets SIGABRT (Go prints its
// goroutines), then its slot is refilled.
func TestWatchdogHang(t *testing.T) {
	for _, path := range []string{"/hang", "/trigger"} {
		t.Run(path, func(t *testing.T) {
			cfg, reports := healthConfig(t, 1)
			cfg.WorkerWatchdog = 300 * time.Millisecond
			cfg.HangGrace = 5 * time.Second
			h := start(t, cfg, reports)
			h.sd.waitFor(t, "READY=1")
			call(t, h.sup.Addrs()[0], path)
			h.waitLogged(t, "worker hung: killing it", nil)
			h.waitLogged(t, "worker failed", logrus.Fields{"exit": "exit status 2"}) // Go's SIGABRT exit
			h.sd.waitFor(t, "STATUS=1/1 workers ready · generation 1 · 1 restarts")
			i := h.findEntry("worker hung: killing it", nil, true)
			reason := h.logs.AllEntries()[i].Data["reason"].(string)
			if want := map[string]string{"/hang": "hung: no WATCHDOG=1 within 300ms", "/trigger": "hung: sent WATCHDOG=trigger"}[path]; !strings.HasPrefix(reason, want) {
				t.Errorf("reason %q, want %q...", reason, want)
			}
			if err := h.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A worker that closed its listener serves nobody: it is recycled.
func TestDeadListenerIsReplaced(t *testing.T) {
	cfg, reports := healthConfig(t, 1)
	cfg.LivenessInterval = 50 * time.Millisecond
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	call(t, h.sup.Addrs()[0], "/close")
	h.waitLogged(t, "worker recycled", logrus.Fields{"reason": "not waiting on its sockets (it closed its listener, or its accept loop died)"})
	if body := call(t, h.sup.Addrs()[0], "/"); !strings.Contains(body, "hello from testworker") {
		t.Errorf("after the recycle: %q", body)
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}

// A worker already over --max-memory when it is ready is a failed start,
// not an endless recycle.
func TestOverMemoryAtStartFails(t *testing.T) {
	cfg, reports := healthConfig(t, 1)
	cfg.MaxMemory = 1 << 10
	h := start(t, cfg, reports)
	err := h.wait(t)
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "over --max-memory 1K as soon as it was ready") {
		t.Fatalf("Run = %v, want a failed start naming the memory limit", err)
	}
}

// Liveness misses add up across memory samples in between (a memory
// sample says nothing about listening).
func TestDeadListenerWithMemorySampling(t *testing.T) {
	cfg, reports := healthConfig(t, 1)
	cfg.LivenessInterval = 100 * time.Millisecond
	cfg.MaxMemory = 1 << 30
	cfg.MemoryInterval = 10 * time.Millisecond
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	call(t, h.sup.Addrs()[0], "/close")
	h.waitLogged(t, "worker recycled", logrus.Fields{"reason": "not waiting on its sockets (it closed its listener, or its accept loop died)"})
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}

// A recycle's replacement is watched like any worker: its watchdog is
// armed once it is ready.
func TestReplacementIsWatched(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report")
	cfg.MaxLifetime = 10 * time.Millisecond
	cfg.WorkerWatchdog = 50 * time.Millisecond
	f := newFakeEnv()
	h := startWith(t, cfg, reports, f)
	first := f.proc(t, 0, 1, 1)
	first.ready(t)
	next := f.proc(t, 0, 1, 2) // the age recycle's replacement
	next.ready(t)
	h.waitLogged(t, "worker hung: killing it", logrus.Fields{"pid": next.pid})
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}
