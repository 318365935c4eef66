package proctree

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// stopRounds bounds the stop-and-rescan rounds of KillTree; each round
	// only repeats when the last one found new processes.
	stopRounds = 20
	// stopWait bounds how long a round waits for its SIGSTOPs to land.
	stopWait = 200 * time.Millisecond
)

// KillTree sends SIGKILL to pid, its descendants, the members of process
// group pgid and their descendants. Pass 0 for a part that does not apply:
// pid 0 for a worker that was already reaped (its number may be reused),
// pgid 0 to leave groups alone.
//
// It first stops everything it finds with SIGSTOP, rescanning until no new
// process shows up, so nothing forks between the scan and the kill. It
// refuses to touch drover itself or drover's own group. Processes that were
// already gone are no error; the result joins the others (EPERM for a
// process of another user). The killed become zombies until their parent,
// or we as subreaper (ReapOrphans), reaps them.
func KillTree(pid, pgid int) error { return sysProc.killTree(pid, pgid) }

func (p *procfs) killTree(pid, pgid int) error {
	self := os.Getpid()
	if pid == self || (pgid > 0 && pgid == unix.Getpgrp()) {
		return fmt.Errorf("kill tree of pid %d, group %d: refusing to kill drover itself", pid, pgid)
	}
	stopped := map[int]bool{}
	var errs []error
	for range stopRounds {
		targets, err := p.members(pid, pgid)
		if err != nil {
			return fmt.Errorf("kill tree of pid %d, group %d: %w", pid, pgid, err)
		}
		var fresh []int
		for _, t := range targets {
			if !stopped[t] && t != self {
				stopped[t] = true
				fresh = append(fresh, t)
			}
		}
		if len(fresh) == 0 {
			break
		}
		for _, t := range fresh {
			errs = appendSignalErr(errs, t, unix.SIGSTOP)
		}
		p.waitStopped(fresh, stopWait)
	}
	for t := range stopped {
		errs = appendSignalErr(errs, t, unix.SIGKILL)
	}
	if pgid > 0 {
		// Catches a member that joined the group after the last scan.
		if err := unix.Kill(-pgid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill group %d: %w", pgid, err))
		}
	}
	return errors.Join(errs...)
}

func appendSignalErr(errs []error, pid int, sig unix.Signal) []error {
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return append(errs, fmt.Errorf("send %v to pid %d: %w", sig, pid, err))
	}
	return errs
}

// members lists pid, the live members of group pgid, and all their live
// descendants.
func (p *procfs) members(pid, pgid int) ([]int, error) {
	if pgid <= 0 {
		if pid <= 0 {
			return nil, nil
		}
		out, err := p.descendants(pid)
		if st, serr := p.stat(pid); serr == nil && !st.Dead() {
			out = append(out, pid)
		}
		return out, err
	}
	// Group membership is only in stat: one scan answers both questions.
	all, err := p.scan()
	if err != nil {
		return nil, err
	}
	var roots []int
	if st, ok := all[pid]; pid > 0 && ok && !st.Dead() {
		roots = append(roots, pid)
	}
	for _, st := range all {
		if st.Pgid == pgid && st.Pid != pid && !st.Dead() {
			roots = append(roots, st.Pid)
		}
	}
	return append(walk(all, roots), roots...), nil
}

// waitStopped waits until each pid is stopped, dead or gone: a SIGSTOP is
// delivered asynchronously, and the next scan only means something once
// the processes it found can no longer fork.
func (p *procfs) waitStopped(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for {
			st, err := p.stat(pid)
			if err != nil || st.State == 'T' || st.State == 't' || st.Dead() {
				break
			}
			if time.Now().After(deadline) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
}
