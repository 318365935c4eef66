package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// target is a supervisor under test: where it serves and which pids are
// its workers now.
type target interface {
	name() string
	addr() string
	// workers are the live worker pids (not zombies), or an error once the
	// target cannot serve any more.
	workers() ([]procStat, error)
	// ready is whether the supervisor itself counts pid as ready: killing
	// a worker drover has not seen ready fails its start, or does not
	// reset the slot's backoff.
	ready(pid int) bool
	// events is what the target reported, stamped when the bench saw it.
	events() *timeline
	close()
}

// event is one thing a supervisor did, stamped on arrival.
type event struct {
	at   time.Time
	what string // "worker failed", "worker started", ... (drover's log messages)
	pid  int
	// in and took are drover's restart delay and its readiness time.
	in, took time.Duration
}

type timeline struct {
	mu     sync.Mutex
	events []event
}

func (t *timeline) add(e event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

// first is the first event at or after t0 that match accepts.
func (t *timeline) first(t0 time.Time, match func(event) bool) (event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.events {
		if !e.at.Before(t0) && match(e) {
			return e, true
		}
	}
	return event{}, false
}

func (t *timeline) all(what string) []event {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []event
	for _, e := range t.events {
		if e.what == what {
			out = append(out, e)
		}
	}
	return out
}

// direct is the limit line: the bench itself supervises, with nothing
// between a worker's exit and its replacement's fork. Its events use
// drover's words: "worker failed" when the exit is reaped, "worker
// started" when the replacement has been forked and exec'd the trampoline.
type direct struct {
	path  string
	argv  []string
	sock  *os.File
	where string
	spawn *spawner
	tl    timeline
	wg    sync.WaitGroup

	mu       sync.Mutex
	procs    map[int]procStat
	stopping bool
	err      error // the app cannot run: the target is broken
}

func startDirect(o *options, sp *spawner) (*direct, error) {
	sock, addr, err := openListener()
	if err != nil {
		return nil, err
	}
	d := &direct{path: o.appPath, argv: o.app, sock: sock, where: addr, spawn: sp, procs: map[int]procStat{}}
	for range o.workers {
		d.wg.Add(1)
		go d.slot()
	}
	return d, nil
}

func (d *direct) name() string      { return "direct" }
func (d *direct) addr() string      { return d.where }
func (d *direct) events() *timeline { return &d.tl }
func (d *direct) ready(int) bool    { return true } // it counts a worker as nothing but a pid
func (d *direct) broken(err error)  { d.mu.Lock(); d.err = errors.Join(d.err, err); d.mu.Unlock() }
func (d *direct) isStopping() bool  { d.mu.Lock(); defer d.mu.Unlock(); return d.stopping }
func (d *direct) forget(pid int)    { d.mu.Lock(); delete(d.procs, pid); d.mu.Unlock() }

// slot keeps one worker running: it forks, waits, and forks again at once.
func (d *direct) slot() {
	defer d.wg.Done()
	for {
		cmd, err := d.fork()
		if cmd == nil {
			if err != nil {
				d.broken(err)
			}
			return
		}
		err = cmd.Wait()
		pid := cmd.Process.Pid
		d.tl.add(event{at: time.Now(), what: "worker failed", pid: pid})
		d.forget(pid)
		if d.isStopping() {
			return
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 127 {
			d.broken(fmt.Errorf("direct: %s could not be executed (its stderr says why)", d.path))
			return
		}
	}
}

// fork starts a worker, or returns nil once the target is stopping. The
// lock keeps close from missing a worker forked meanwhile.
func (d *direct) fork() (*exec.Cmd, error) {
	cmd, err := activatedCommand(d.path, d.argv, d.sock)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return nil, nil
	}
	if err := d.spawn.start(cmd); err != nil {
		return nil, fmt.Errorf("direct: start %s: %w", d.path, err)
	}
	d.tl.add(event{at: time.Now(), what: "worker started", pid: cmd.Process.Pid})
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		// Exited already; its pid stays reserved until Wait reaps it.
		st = procStat{pid: cmd.Process.Pid}
	}
	d.procs[st.pid] = st
	return cmd, nil
}

func (d *direct) workers() ([]procStat, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	var out []procStat
	for _, st := range d.procs {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, nil
}

// close kills every worker's process group and waits until each is reaped.
func (d *direct) close() {
	d.mu.Lock()
	d.stopping = true
	for pid := range d.procs {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.sock.Close()
}
