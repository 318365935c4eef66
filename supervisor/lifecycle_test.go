package supervisor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// These lifecycle tests run the event loop on fake processes (env_test.go):
// the test fires every ready and exit event itself, so the order of events
// is the test's, not the scheduler's.

// Reload requests during a reload become one more reload after it.
func TestReloadsCoalesce(t *testing.T) {
	h, f := startFake(t, 2)
	errs := make(chan error, 4)
	go func() { errs <- h.sup.Reload() }()
	f.proc(t, 0, 2, 1) // the first reload is under way
	for range 3 {
		go func() { errs <- h.sup.Reload() }()
	}
	h.waitCount(t, "reload requested: queued behind the reload (or start) under way", 3)
	for gen := 2; gen <= 3; gen++ {
		for slot := range 2 {
			f.proc(t, slot, gen, 1).ready(t)
		}
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 3 · 0 restarts")
	if h.logged("worker started", logrus.Fields{"generation": 4}) {
		t.Error("four requests made more than two reloads")
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	f.allEnded(t)
}

// Stopping during a reload stops everything cleanly and fails the reload.
func TestStopDuringReload(t *testing.T) {
	h, f := startFake(t, 2)
	errs := make(chan error, 1)
	go func() { errs <- h.sup.Reload() }()
	f.proc(t, 0, 2, 1) // starting, never ready
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-errs; err == nil {
		t.Error("reload interrupted by a stop reported success")
	}
	f.allEnded(t)
}

// An old worker that crashes during a reload loses no slot: its slot is
// served again, and the reload still completes.
func TestOldWorkerCrashDuringReload(t *testing.T) {
	h, f := startFake(t, 3)
	errs := make(chan error, 1)
	go func() { errs <- h.sup.Reload() }()
	first := f.proc(t, 0, 2, 1)
	// Slot 2 is not reached yet: its old worker crashes and restarts.
	f.proc(t, 2, 1, 1).crash(1)
	f.proc(t, 2, 1, 2).ready(t)
	first.ready(t)
	f.proc(t, 1, 2, 1).ready(t)
	f.proc(t, 2, 2, 1).ready(t)
	if err := <-errs; err != nil {
		t.Fatalf("Reload: %v", err)
	}
	h.sd.waitFor(t, "STATUS=3/3 workers ready · generation 2 · 1 restarts")
	for slot := range 3 {
		for nth := 1; nth <= 2 && (slot == 2 || nth == 1); nth++ {
			if p := f.proc(t, slot, 1, nth); !p.ended() {
				t.Errorf("old worker %d of slot %d still running", p.pid, slot)
			}
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	f.allEnded(t)
}

// An old worker that crashes while a failed reload rolls back is an
// ordinary restart, not a failure of the rollback: every slot ends up
// served by the old version.
func TestOldWorkerCrashDuringRollback(t *testing.T) {
	h, f := startFake(t, 3)
	errs := make(chan error, 1)
	go func() { errs <- h.sup.Reload() }()
	f.proc(t, 0, 2, 1).ready(t)
	f.proc(t, 1, 2, 1).crash(3)
	h.waitLogged(t, "reload aborted: rolling back", nil)
	f.proc(t, 2, 1, 1).crash(1)
	f.proc(t, 0, 1, 2).ready(t) // the rollback's worker for the slot that had moved
	f.proc(t, 2, 1, 2).ready(t) // the crashed worker's restart
	err := <-errs
	if err == nil || strings.Contains(err.Error(), "restoring generation") {
		t.Fatalf("Reload = %v, want the reload's failure and a rollback that succeeded", err)
	}
	h.sd.waitFor(t, "STATUS=reload failed: worker 1 of generation 2: exit status 3; serving generation 1 · 3/3 workers ready · 1 restarts")
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	f.allEnded(t)
}

// waitCount waits until n log entries have exactly the message msg.
func (h *harness) waitCount(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := 0
		for _, e := range h.logs.AllEntries() {
			if e.Message == msg {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logged %q %d times, want %d", msg, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An illegal phase or generation move is reported, not made.
func TestIllegalMovesAreReported(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	s := &Supervisor{log: logger, phase: phaseStopping}
	s.setPhase(phaseServing)
	g := &generation{number: 1, state: generationRetiring}
	s.moveGeneration(g, generationServing)
	if s.phase != phaseStopping || g.state != generationRetiring {
		t.Errorf("moved anyway: phase %s, generation %s", s.phase, g.state)
	}
	var bugs []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			bugs = append(bugs, e.Message)
		}
	}
	if len(bugs) != 2 || !strings.Contains(bugs[0], "phase") || !strings.Contains(bugs[1], "generation") {
		t.Errorf("reports %q, want one per illegal move", bugs)
	}
}

// A worker that was healthy (ready for --min-uptime) is refilled at once;
// a quick failure waits the backoff.
func TestRestartAtOnceAfterHealthyRun(t *testing.T) {
	for _, tc := range []struct {
		minUptime time.Duration
		in        string
	}{{time.Nanosecond, "0s"}, {time.Hour, "100ms"}} {
		cfg, reports := testConfig(t, 1, "report")
		cfg.MinUptime = tc.minUptime
		f := newFakeEnv()
		h := startWith(t, cfg, reports, f)
		f.proc(t, 0, 1, 1).ready(t)
		h.sd.waitFor(t, "READY=1")
		f.proc(t, 0, 1, 1).crash(1)
		f.proc(t, 0, 1, 2).ready(t)
		h.sd.waitFor(t, "STATUS=1/1 workers ready · generation 1 · 1 restarts")
		if !h.logged("restarting worker", logrus.Fields{"in": tc.in}) {
			t.Errorf("min-uptime %v: no restart in %s", tc.minUptime, tc.in)
		}
		if err := h.stop(t); err != nil {
			t.Fatal(err)
		}
	}
}

// Running out of fds or processes to start a worker is the machine's
// trouble, not the app's: drover keeps trying and never calls it a crash
// loop, however often it happens.
func TestResourceExhaustionIsNoCrashLoop(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report")
	cfg.MaxFailures = 2
	cfg.BackoffMin = time.Millisecond
	cfg.BackoffMax = time.Millisecond
	f := newFakeEnv()
	h := startWith(t, cfg, reports, f)
	f.proc(t, 0, 1, 1).ready(t)
	h.sd.waitFor(t, "READY=1")
	f.failLaunches(5, fmt.Errorf("start worker 0: worker stdout pipe: %w", unix.EMFILE))
	f.proc(t, 0, 1, 1).crash(1)
	f.proc(t, 0, 1, 2).ready(t)
	h.sd.waitFor(t, "STATUS=1/1 workers ready · generation 1 · 6 restarts")
	h.waitCount(t, "out of resources to start a worker (start worker 0: worker stdout pipe: too many open files); trying again, not counted as a failure of the app", 5)
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v, want no crash loop", err)
	}
}

// A reload asked for on the control socket (ExecReload=drover reload,
// Type=notify) sends systemd no RELOADING=1; one asked for by SIGHUP
// (Type=notify-reload) does.
func TestReloadingOnlyForSIGHUP(t *testing.T) {
	h, f := startFake(t, 1)
	errs := make(chan error, 1)
	go func() { errs <- h.sup.reload("control", false) }()
	f.proc(t, 0, 2, 1).ready(t)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	h.sd.waitFor(t, "STATUS=1/1 workers ready · generation 2 · 0 restarts")
	if m := h.sd.all(); hasAny(m, "RELOADING=1") {
		t.Errorf("control reload told systemd RELOADING=1: %q", m)
	}
	go func() { errs <- h.sup.Reload() }()
	f.proc(t, 0, 3, 1).ready(t)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	h.sd.waitFor(t, "RELOADING=1")
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}

// Age recycles go one at a time; a replacement that fails leaves the old
// worker serving and is tried again, never counted as a failure.
func TestRecyclesOneAtATimeAndRetry(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.MaxLifetime = time.Millisecond
	cfg.MaxFailures = 1 // a counted failure would be a crash loop
	cfg.BackoffMin = time.Millisecond
	f := newFakeEnv()
	h := startWith(t, cfg, reports, f)
	f.proc(t, 0, 1, 1).ready(t)
	f.proc(t, 1, 1, 1).ready(t)
	h.sd.waitFor(t, "READY=1")
	first := f.waitNewest(t, 1, 3) // the first replacement, of either slot
	other := 1 - first.slot
	if f.count(other, 1) != 1 {
		t.Fatal("two recycles under way at once")
	}
	first.crash(1) // the replacement fails: the old worker keeps serving
	h.waitLogged(t, "recycle failed: the old worker keeps serving; trying again", nil)
	retry := f.proc(t, first.slot, 1, 3)
	retry.ready(t)
	h.waitLogged(t, "worker recycled", logrus.Fields{"worker": first.slot})
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
}
