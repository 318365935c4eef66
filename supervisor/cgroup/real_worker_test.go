package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daemonTree forks a background sleep, a setsid'd double-forked sleep (its
// parent exits at once, so it is reparented away from the tree) and a
// foreground sleep: everything pid- and session-based bookkeeping misses.
const daemonTree = `sleep 1000 & setsid sh -c "sleep 1000 &" ; sleep 1000`

// stat is what the tests read from /proc/PID/stat.
type stat struct {
	state           byte
	ppid, pgid, sid int
}

func readStat(pid int) (stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	// comm may hold spaces and parentheses: fields follow the last ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var st stat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgid, _ = strconv.Atoi(f[2])
	st.sid, _ = strconv.Atoi(f[3])
	return st, nil
}

// gone says pid is dead: no such process, or a zombie waiting for its
// parent. Identity is the pid, never a name.
func gone(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return true
	}
	st, err := readStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

// reap collects zombies that were reparented to the test binary (our
// subreaper), by pid so no exec.Cmd loses its child.
func reap(pids []int) {
	for _, pid := range pids {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// newTree takes over a fresh scratch cgroup.
func newTree(t *testing.T) *Tree {
	tree, err := OpenAt(testLog(t), scratch(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree
}

// startTree starts daemonTree straight into w and waits until the daemon
// has left its parent: then the cgroup holds the whole tree.
func startTree(t *testing.T, w *Worker) (*exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", daemonTree)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: w.FD(), Setpgid: true}
	start(t, cmd)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids, err := w.Procs()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reap(pids) })
		if daemonIn(pids, cmd.Process.Pid) && len(pids) >= 3 {
			return cmd, pids
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the process tree did not settle in %s", w.Path())
	return nil, nil
}

// daemonIn finds the double-forked sleep: another session, and reparented
// to us (the subreaper) because its parent exited.
func daemonIn(pids []int, shell int) bool {
	top, err := readStat(shell)
	if err != nil {
		return false
	}
	for _, pid := range pids {
		st, err := readStat(pid)
		if err == nil && st.sid != top.sid && st.ppid == os.Getpid() {
			return true
		}
	}
	return false
}

func checkKilled(t *testing.T, w *Worker, cmd *exec.Cmd, pids []int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.WaitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d survived the kill of %s", pid, w.Path())
		}
	}
	reap(pids)
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Remove: %v", w.Path(), err)
	}
	if w.FD() != -1 {
		t.Errorf("FD = %d after Remove, want -1", w.FD())
	}
}

// Started with CLONE_INTO_CGROUP, a tree with a setsid'd double-forked
// daemon dies whole with cgroup.kill.
func TestRealKill(t *testing.T) {
	w, err := newTree(t).NewWorker("worker-0-1")
	if err != nil {
		t.Fatal(err)
	}
	cmd, pids := startTree(t, w)
	if !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("the shell %d is not in its cgroup: %v", cmd.Process.Pid, pids)
	}
	if got, want := cgroupOf(t, cmd.Process.Pid), "/"+filepath.Base(filepath.Dir(w.Path()))+"/worker-0-1"; got != want {
		t.Errorf("shell's cgroup = %s, want %s", got, want)
	}
	if _, err := os.Stat(w.file("cgroup.kill")); err != nil {
		t.Fatalf("this test is about cgroup.kill: %v", err)
	}
	if err := w.Kill(); err != nil {
		t.Fatal(err)
	}
	checkKilled(t, w, cmd, pids)
}

// The fallback for kernels without cgroup.kill: freeze, SIGKILL each pid.
func TestRealKillFrozen(t *testing.T) {
	w, err := newTree(t).NewWorker("worker-0-2")
	if err != nil {
		t.Fatal(err)
	}
	cmd, pids := startTree(t, w)
	if err := w.killFrozen(killTimeout); err != nil {
		t.Fatal(err)
	}
	if v, err := os.ReadFile(w.file("cgroup.freeze")); err != nil || string(v) != "0\n" {
		t.Errorf("cgroup.freeze = %q, %v after the kill; want it thawed", v, err)
	}
	checkKilled(t, w, cmd, pids)
}

// Add for kernels without clone3; the stats; WaitEmpty really waits.
func TestRealAddAndStats(t *testing.T) {
	w, err := newTree(t).NewWorker("worker-1-1")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "1000")
	start(t, cmd)
	if err := w.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, err := w.Procs(); err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Procs = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	if _, ok := w.CPUUsage(); !ok {
		t.Error("CPUUsage not available: cpu.stat exists on every v2 cgroup")
	}
	_, hasMem := os.Stat(w.file("memory.current"))
	if _, ok := w.MemoryCurrent(); ok != (hasMem == nil) {
		t.Errorf("MemoryCurrent ok = %v, memory.current stat: %v", ok, hasMem)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.WaitEmpty(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitEmpty on a live cgroup = %v, want DeadlineExceeded", err)
	}
	if err := w.Remove(); !errors.Is(err, ErrPopulated) {
		t.Errorf("Remove of a live cgroup = %v, want ErrPopulated", err)
	}
	if err := w.Kill(); err != nil {
		t.Fatal(err)
	}
	checkKilled(t, w, cmd, []int{cmd.Process.Pid})
}

// Close removes the empty worker cgroups, a previous run's too, and leaves
// a populated one.
func TestRealClose(t *testing.T) {
	tree := newTree(t)
	empty, err := tree.NewWorker("worker-0-1")
	if err != nil {
		t.Fatal(err)
	}
	busy, err := tree.NewWorker("worker-0-2")
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(tree.Dir(), "worker-9-9")
	if err := os.MkdirAll(filepath.Join(stale, "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: busy.FD()}
	start(t, cmd)
	err = tree.Close()
	if !errors.Is(err, ErrPopulated) || !strings.Contains(err.Error(), busy.Path()) {
		t.Errorf("Close = %v, want ErrPopulated for %s", err, busy.Path())
	}
	for _, dir := range []string{empty.Path(), stale} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left by Close: %v", dir, err)
		}
	}
	if _, err := os.Stat(busy.Path()); err != nil {
		t.Errorf("Close removed the populated %s: %v", busy.Path(), err)
	}
	if _, err := tree.NewWorker("late"); err == nil {
		t.Error("NewWorker after Close succeeded")
	}
}

// cgroupfs reports each change of cgroup.events to inotify as a
// modification, so WaitEmpty sleeps instead of polling.
func TestRealEventsNotify(t *testing.T) {
	w, err := newTree(t).NewWorker("worker-2-1")
	if err != nil {
		t.Fatal(err)
	}
	watch, err := watchModify(w.file("cgroup.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: w.FD()}
	start(t, cmd)
	watch.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := watch.Read(make([]byte, 4096)); err != nil {
		t.Fatalf("no inotify event when the cgroup became populated: %v", err)
	}
	if err := w.Kill(); err != nil {
		t.Fatal(err)
	}
	checkKilled(t, w, cmd, []int{cmd.Process.Pid})
}
