package supervisor

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/output"
)

// fakeEnv stands in for real processes (env.go): a launched worker is a
// fakeProc whose ready and exit events the test fires, so a lifecycle test
// orders events itself instead of relying on timers and the machine's
// speed. A fake drains at once: the stop signal or SIGKILL ends it.
type fakeEnv struct {
	mu      sync.Mutex
	failN   int // launches still to fail with failErr
	failErr error
	nextPid int
	procs   []*fakeProc
	changed chan struct{} // signalled when a proc starts or ends
}

// fakeProc is one fake worker process. Its pid is far above any real pid
// (pid_max is at most 2^22), so a signal that escaped the fake would fail.
type fakeProc struct {
	env        *fakeEnv
	pid        int
	slot, gen  int
	exited     func(exit)
	readyFunc  chan func() // the loop's ready callback, once it watches
	mu         sync.Mutex
	done       bool
	gotSignals []syscall.Signal
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{nextPid: 1 << 30, changed: make(chan struct{}, 1)}
}

func (f *fakeEnv) signalChange() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// failLaunches makes the next n launches fail with err.
func (f *fakeEnv) failLaunches(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failN, f.failErr = n, err
}

func (f *fakeEnv) launch(slot int, gen *generation, exited func(exit)) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN > 0 {
		f.failN--
		return 0, f.failErr
	}
	f.nextPid++
	p := &fakeProc{env: f, pid: f.nextPid, slot: slot, gen: gen.number, exited: exited, readyFunc: make(chan func(), 1)}
	f.procs = append(f.procs, p)
	f.signalChange()
	return p.pid, nil
}

// adopt is not used by the lifecycle tests: upgrades exec, so they are
// tested with real drover processes (cmd/drover).
func (f *fakeEnv) adopt(pid int, meta output.Meta, files adoptedFiles, exited func(exit)) {
	panic("fakeEnv: adopt")
}

func (f *fakeEnv) find(pid int) *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		if p.pid == pid {
			return p
		}
	}
	return nil
}

func (f *fakeEnv) watchReady(_ context.Context, pid int, _ logrus.FieldLogger, ready func()) {
	f.find(pid).readyFunc <- ready
}

func (f *fakeEnv) signal(pid int, sig syscall.Signal) error {
	p := f.find(pid)
	if p == nil {
		return fmt.Errorf("fake: no process %d", pid)
	}
	p.mu.Lock()
	p.gotSignals = append(p.gotSignals, sig)
	p.mu.Unlock()
	p.end(failure{failExit, "exit status 0"})
	return nil
}

func (f *fakeEnv) killTree(pid int) {
	if p := f.find(pid); p != nil {
		p.end(failure{failSignal, "killed by SIGKILL"})
	}
}

// proc waits until the newest worker of generation gen in slot is
// launched, the nth (from 1) such launch, and returns it.
func (f *fakeEnv) proc(t *testing.T, slot, gen, nth int) *fakeProc {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		f.mu.Lock()
		seen := 0
		for _, p := range f.procs {
			if p.slot == slot && p.gen == gen {
				if seen++; seen == nth {
					f.mu.Unlock()
					return p
				}
			}
		}
		f.mu.Unlock()
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("worker %d of generation %d (launch %d) never started", slot, gen, nth)
		}
	}
}

// ready makes the loop see the worker ready, as the /proc probe would.
func (p *fakeProc) ready(t *testing.T) {
	t.Helper()
	select {
	case ready := <-p.readyFunc:
		ready()
	case <-time.After(waitLimit):
		t.Fatalf("nobody watches worker %d (slot %d) for readiness", p.pid, p.slot)
	}
}

// crash ends the worker as if it exited by itself with code.
func (p *fakeProc) crash(code int) {
	p.end(failure{failExit, fmt.Sprintf("exit status %d", code)})
}

// end reports the process gone, once.
func (p *fakeProc) end(how failure) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	p.mu.Unlock()
	// From its own goroutine, as a real wait would: the loop may be the
	// caller (signal, killTree).
	go p.exited(exit{status: how})
	p.env.signalChange()
}

func (p *fakeProc) ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// startFake runs a supervisor of n fake workers, each made ready in turn.
func startFake(t *testing.T, n int) (*harness, *fakeEnv) {
	t.Helper()
	cfg, reports := testConfig(t, n, "report")
	f := newFakeEnv()
	h := startWith(t, cfg, reports, f)
	for slot := range n {
		f.proc(t, slot, 1, 1).ready(t)
	}
	h.sd.waitFor(t, "READY=1")
	return h, f
}

// allEnded fails the test if a fake worker is still running.
func (f *fakeEnv) allEnded(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		if !p.ended() {
			t.Errorf("worker %d (slot %d, generation %d) still running", p.pid, p.slot, p.gen)
		}
	}
}

// count is how many workers of gen were launched in slot so far.
func (f *fakeEnv) count(slot, gen int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.procs {
		if p.slot == slot && p.gen == gen {
			n++
		}
	}
	return n
}

// waitNewest waits until n workers of gen were launched in all and
// returns the last.
func (f *fakeEnv) waitNewest(t *testing.T, gen, n int) *fakeProc {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		f.mu.Lock()
		var seen []*fakeProc
		for _, p := range f.procs {
			if p.gen == gen {
				seen = append(seen, p)
			}
		}
		f.mu.Unlock()
		if len(seen) >= n {
			return seen[n-1]
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("%d workers of generation %d launched, want %d", len(seen), gen, n)
		}
	}
}
