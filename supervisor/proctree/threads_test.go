package proctree

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inWaitid counts our threads blocked in waitid(2), from the syscall
// number each one is in (/proc/self/task/TID/syscall). Unlike the thread
// count it does not depend on idle threads the runtime kept from earlier.
func inWaitid(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		data, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue // exited, or no CONFIG_HAVE_ARCH_TRACEHOOK
		}
		nr, _, _ := strings.Cut(string(data), " ")
		if nr == strconv.Itoa(unix.SYS_WAITID) {
			n++
		}
	}
	return n
}

// waitAll has one goroutine per child run wait and returns the most
// threads seen blocked in waitid meanwhile; then it kills the children.
// The goroutines reach their blocking call within microseconds, so 300ms
// of samples see them all waiting.
func waitAll(t *testing.T, cmds []*exec.Cmd, wait func(*exec.Cmd)) int {
	var wg sync.WaitGroup
	for _, c := range cmds {
		wg.Go(func() { wait(c) })
	}
	peak := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		peak = max(peak, inWaitid(t))
	}
	for _, c := range cmds {
		c.Process.Kill()
	}
	wg.Wait()
	return peak
}

// WaitExit parks in the runtime poller; os.Process.Wait (Go 1.26) blocks a
// thread in waitid(P_PIDFD) per child. Measured, not assumed.
func TestWaitExitThreads(t *testing.T) {
	const n = 50
	p := newProcs(t)
	batch := func() []*exec.Cmd {
		var cmds []*exec.Cmd
		for range n {
			cmd, _ := p.start(Tag{}, `exec sleep 1000`)
			cmds = append(cmds, cmd)
		}
		return cmds
	}
	byPidfd := waitAll(t, batch(), func(c *exec.Cmd) {
		if err := WaitExit(t.Context(), c.Process.Pid); err != nil {
			t.Error(err)
		}
		c.Wait() // a zombie by now: returns at once
	})
	byWait := waitAll(t, batch(), func(c *exec.Cmd) { c.Wait() })
	t.Logf("threads blocked in waitid while %d children were waited for: WaitExit %d, Cmd.Wait %d", n, byPidfd, byWait)
	if byPidfd != 0 {
		t.Errorf("WaitExit blocked %d threads in waitid, want none", byPidfd)
	}
	if byWait < n/2 {
		t.Logf("os.Process.Wait no longer holds a thread per child (%d for %d): WaitExit may have become unnecessary", byWait, n)
	}
}
