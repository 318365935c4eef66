package proctree

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is a subreaper for its whole life: tests see their
// orphans, and no zombie is left to a PID 1 that may not reap. Tests that
// reap do so by pid, and know every pid an exec.Cmd owns (started), so they
// must not run in parallel with each other.
func TestMain(m *testing.M) {
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// started holds the pids of every exec.Cmd the tests started: what a
// supervisor knows as its workers.
var started sync.Map

func isStarted(pid int) bool { _, ok := started.Load(pid); return ok }

// procs tracks what one test started and tears it all down by pid.
type procs struct {
	t    *testing.T
	mu   sync.Mutex
	pids []int
	cmds []*exec.Cmd
}

func newProcs(t *testing.T) *procs {
	p := &procs{t: t}
	t.Cleanup(p.cleanup)
	return p
}

func (p *procs) track(pids ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pids = append(p.pids, pids...)
}

// start runs script in sh as a worker would run: tagged environment, its
// own process group. The script's stdout is returned for pids it prints.
func (p *procs) start(tag Tag, script string) (*exec.Cmd, *bufio.Reader) {
	p.t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(),
		EnvWorkerID+"="+strconv.Itoa(tag.Slot),
		EnvGeneration+"="+strconv.Itoa(tag.Generation))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	started.Store(cmd.Process.Pid, true)
	p.mu.Lock()
	p.cmds = append(p.cmds, cmd)
	p.mu.Unlock()
	p.track(cmd.Process.Pid)
	return cmd, bufio.NewReader(out)
}

// readPid reads one pid the script printed, and tracks it.
func (p *procs) readPid(r *bufio.Reader) int {
	p.t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read pid from script: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		p.t.Fatalf("script printed %q, want a pid", line)
	}
	p.track(pid)
	return pid
}

// cleanup kills by pid what the test started and is still ours, waits for
// the commands and reaps the orphans.
func (p *procs) cleanup() {
	p.mu.Lock()
	pids, cmds := p.pids, p.cmds
	p.mu.Unlock()
	for _, cmd := range cmds {
		if kids, err := Descendants(cmd.Process.Pid); err == nil {
			pids = append(pids, kids...)
		}
	}
	for _, pid := range pids {
		if ours(pid) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, cmd := range cmds {
		cmd.Process.Kill()
		cmd.Wait()
	}
	if left := waitGone(pids, 5*time.Second); len(left) > 0 {
		p.t.Errorf("cleanup: pids %v still there", left)
	}
}

// ours tells whether pid is a descendant of the test binary: a pid we
// tracked but that died and was reused by a stranger is not, and is left
// alone.
func ours(pid int) bool {
	self := os.Getpid()
	for range 64 {
		st, err := ReadStat(pid)
		if err != nil || st.PPid <= 1 {
			return false
		}
		if st.PPid == self {
			return true
		}
		pid = st.PPid
	}
	return false
}

// waitGone reaps orphans until none of pids is left among our processes
// (alive or zombie), and returns those still there at the timeout.
func waitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		ReapOrphans(isStarted)
		var left []int
		for _, pid := range pids {
			if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) && ours(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or 5s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
