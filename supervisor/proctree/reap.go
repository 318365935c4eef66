package proctree

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BecomeSubreaper makes this process the child subreaper
// (PR_SET_CHILD_SUBREAPER): orphans among our descendants are reparented
// to us instead of to PID 1, so they stay visible and killable. It applies
// to the whole process, all threads; execve keeps it, children do not
// inherit it.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// ReapOrphans reaps our zombie children that known does not claim, and
// returns their pids. known must say true for every child some os/exec Cmd
// may still Wait for, including one being started right now: call it from
// the goroutine that starts and registers the workers, or under the same
// lock. Each zombie is reaped by its own pid with WNOHANG, never with
// wait(-1), so a known child's exit status is never taken. When /proc
// cannot be read it reaps nothing; the next call tries again.
func ReapOrphans(known func(pid int) bool) []int { return sysProc.reapOrphans(os.Getpid(), known) }

func (p *procfs) reapOrphans(self int, known func(pid int) bool) []int {
	kids, err := p.ourChildren(self)
	if err != nil {
		return nil
	}
	var reaped []int
	for _, st := range kids {
		if st.State != 'Z' || known(st.Pid) {
			continue
		}
		var ws unix.WaitStatus
		if pid, err := unix.Wait4(st.Pid, &ws, unix.WNOHANG, nil); err == nil && pid == st.Pid {
			reaped = append(reaped, pid)
		}
	}
	return reaped
}
