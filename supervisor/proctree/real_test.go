package proctree

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestBecomeSubreaper(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	var on int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&on)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if on != 1 {
		t.Errorf("PR_GET_CHILD_SUBREAPER = %d, want 1", on)
	}
}

// adopted tells whether pid is our child now: its parent exited.
func adopted(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.PPid == os.Getpid()
}

func knownSet(cmds ...*exec.Cmd) map[int]bool {
	m := map[int]bool{}
	for _, c := range cmds {
		m[c.Process.Pid] = true
	}
	return m
}

// A worker forks a sleeping grandchild and one that drops its environment,
// then dies of SIGKILL: both are adopted by us; the environment tells
// whose the first is, the process group whose the second is.
func TestOrphansOfKilledWorker(t *testing.T) {
	p := newProcs(t)
	tag := Tag{Slot: 3, Generation: 7}
	cmd, out := p.start(tag, `sleep 1000 >/dev/null & echo $!; `+
		// The bare one prints its own pid once env -i has run.
		`env -i sh -c 'echo $$; exec sleep 1000 >/dev/null' & exec sleep 1000`)
	tagged, bare := p.readPid(out), p.readPid(out)
	worker := cmd.Process.Pid
	cmd.Process.Kill()
	cmd.Wait()

	orphans, err := Orphans(knownSet(cmd))
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{tagged, bare} {
		if !slices.Contains(orphans, pid) {
			t.Errorf("orphan %d not in Orphans %v", pid, orphans)
		}
	}
	if slot, gen, ok := WorkerOf(tagged); !ok || slot != 3 || gen != 7 {
		t.Errorf("WorkerOf(%d) = %d, %d, %v; want 3, 7, true", tagged, slot, gen, ok)
	}
	if _, _, ok := WorkerOf(bare); ok {
		t.Errorf("WorkerOf found tags in an env -i process")
	}
	groups := map[int]Tag{worker: tag}
	if got, how := Attribute(tagged, groups); got != tag || how != ByEnvironment {
		t.Errorf("Attribute(tagged) = %v by %v", got, how)
	}
	if got, how := Attribute(bare, groups); got != tag || how != ByProcessGroup {
		t.Errorf("Attribute(bare) = %v by %v", got, how)
	}
	// The worker is reaped: only its group is left to name the tree.
	if err := KillTree(0, worker); err != nil {
		t.Fatal(err)
	}
	if left := waitGone([]int{tagged, bare}, 5*time.Second); len(left) > 0 {
		t.Errorf("KillTree(0, %d) left %v", worker, left)
	}
}

// A setsid'd double-forked daemon leaves the worker's session and group,
// and is adopted by us while the worker still runs. Its environment still
// names the worker; one started with env -i cannot be attributed.
func TestSetsidDaemon(t *testing.T) {
	p := newProcs(t)
	tag := Tag{Slot: 1, Generation: 2}
	cmd, out := p.start(tag, `setsid sh -c 'sleep 1000 >/dev/null & echo $!'; `+
		`env -i setsid sh -c 'sleep 1000 >/dev/null & echo $!'; exec sleep 1000`)
	daemon, scrubbed := p.readPid(out), p.readPid(out)
	worker := cmd.Process.Pid
	waitFor(t, "the daemons to be adopted", func() bool { return adopted(daemon) && adopted(scrubbed) })
	ws, _ := ReadStat(worker)
	for _, pid := range []int{daemon, scrubbed} {
		st, err := ReadStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.PPid != os.Getpid() || st.Sid == ws.Sid || st.Pgid == ws.Pgid {
			t.Errorf("pid %d: %+v, want adopted by us, out of the worker's session %d and group %d", pid, st, ws.Sid, ws.Pgid)
		}
	}
	orphans, err := Orphans(knownSet(cmd))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(orphans, daemon) || !slices.Contains(orphans, scrubbed) {
		t.Errorf("Orphans = %v, want %d and %d while the worker lives", orphans, daemon, scrubbed)
	}
	groups := map[int]Tag{worker: tag}
	if got, how := Attribute(daemon, groups); got != tag || how != ByEnvironment {
		t.Errorf("Attribute(daemon) = %v by %v", got, how)
	}
	if _, how := Attribute(scrubbed, groups); how != Unattributed {
		t.Errorf("Attribute(scrubbed) by %v, want Unattributed", how)
	}
	for _, pid := range []int{daemon, scrubbed, worker} {
		if err := KillTree(pid, 0); err != nil {
			t.Error(err)
		}
	}
	cmd.Wait()
	if left := waitGone([]int{daemon, scrubbed, worker}, 5*time.Second); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// fanOut starts 50 sleeping children, a setsid'd one, and a nested shell
// in a group of its own with a child: group-kill alone misses two.
const fanOut = `for i in $(seq 50); do sleep 1000 >/dev/null & done
setsid sleep 1000 >/dev/null &
sh -c 'set -m; sleep 1000 >/dev/null & wait' &
echo ready; wait`

func TestKillTree(t *testing.T) {
	p := newProcs(t)
	cmd, out := p.start(Tag{Slot: 0, Generation: 1}, fanOut)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("script said %q, %v", line, err)
	}
	worker := cmd.Process.Pid
	var tree []int
	waitFor(t, "53 descendants", func() bool {
		tree, _ = Descendants(worker)
		return len(tree) >= 53
	})
	p.track(tree...)
	all, err := sysProc.scan()
	if err != nil {
		t.Fatal(err)
	}
	if byScan := walk(all, []int{worker}); !sameSet(byScan, tree) {
		t.Errorf("Descendants %v and the /proc scan %v differ", tree, byScan)
	}
	if err := KillTree(worker, worker); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	reaped := map[int]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(reaped) < len(tree) && time.Now().Before(deadline) {
		for _, pid := range ReapOrphans(isStarted) {
			reaped[pid] = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, pid := range tree {
		if !reaped[pid] {
			t.Errorf("pid %d of the tree was not reaped by ReapOrphans", pid)
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) && ours(pid) {
			t.Errorf("pid %d survived KillTree", pid)
		}
	}
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// ReapOrphans must never take a known child's exit status.
func TestReapOrphansLeavesKnown(t *testing.T) {
	p := newProcs(t)
	cmd, _ := p.start(Tag{}, `exit 3`)
	waitFor(t, "the child to be a zombie", func() bool {
		st, err := ReadStat(cmd.Process.Pid)
		return err == nil && st.State == 'Z'
	})
	if got := ReapOrphans(isStarted); slices.Contains(got, cmd.Process.Pid) {
		t.Fatalf("ReapOrphans reaped the known child %d", cmd.Process.Pid)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Cmd.Wait = %v, want exit status 3", err)
	}
}

func TestKillTreeRefusesSelf(t *testing.T) {
	if err := KillTree(os.Getpid(), 0); err == nil {
		t.Error("KillTree(self) succeeded")
	}
	if err := KillTree(0, unix.Getpgrp()); err == nil {
		t.Error("KillTree(our group) succeeded")
	}
}

func TestWaitExit(t *testing.T) {
	p := newProcs(t)
	cmd, _ := p.start(Tag{}, `exec sleep 1000`)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := WaitExit(ctx, cmd.Process.Pid); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitExit on a live child = %v, want DeadlineExceeded", err)
	}
	cmd.Process.Kill()
	if err := WaitExit(t.Context(), cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// Exited, not reaped: the exit status is still Cmd.Wait's.
	if st, err := ReadStat(cmd.Process.Pid); err != nil || st.State != 'Z' {
		t.Errorf("after WaitExit: %+v, %v; want a zombie", st, err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("Cmd.Wait = %v, want killed by a signal", err)
	}
}
