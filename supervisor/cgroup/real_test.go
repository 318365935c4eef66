package cgroup

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// These tests drive the real kernel. They need root and a cgroup2 mount;
// each works in a scratch cgroup below the mount's root that t.Cleanup
// kills and removes whatever happened.

// scratch creates <cgroup2 mount>/drover-test-<random> and returns it.
func scratch(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	loc, err := Detect("/")
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	dir := filepath.Join(loc.Mount, "drover-test-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a scratch cgroup: %v", err)
	}
	t.Cleanup(func() { destroy(t, dir) })
	return dir
}

// destroy kills everything below dir and removes it. It works without the
// package's tree, so a test that failed half-way is still cleaned up.
func destroy(t *testing.T, dir string) {
	w := &Worker{dir: dir, fd: -1}
	if err := w.Kill(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.WaitEmpty(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if err := removeDir(dir, removeTimeout); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// openFD opens a cgroup directory for CLONE_INTO_CGROUP.
func openFD(t *testing.T, dir string) int {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// start runs cmd and makes sure it is killed and waited for.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// cgroupOf is the unified-hierarchy path of pid, from /proc/PID/cgroup.
func cgroupOf(t *testing.T, pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := parseSelfCgroup(data)
	return p
}

// The whole take-over as drover does it: a process started straight into
// a cgroup (UseCgroupFD) finds that cgroup with Detect and moves itself into
// the supervisor leaf.
func TestRealOpenInScratchCgroup(t *testing.T) {
	dir := scratch(t)
	cmd := exec.Command(os.Args[0])
	// A race-enabled binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), helperEnv+"=open", "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: openFD(t, dir)}
	cmd.Stderr = testWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper said nothing: %v", err)
	}
	if want := "dir " + dir + " "; !strings.HasPrefix(line, want) {
		t.Fatalf("helper said %q, want prefix %q", line, want)
	}
	if pids, _ := readPids(filepath.Join(dir, "cgroup.procs")); len(pids) != 0 {
		t.Errorf("our cgroup still holds %v after Open", pids)
	}
	leaf := filepath.Join(dir, SupervisorLeaf)
	if pids, _ := readPids(filepath.Join(leaf, "cgroup.procs")); !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("supervisor leaf holds %v, want [%d]", pids, cmd.Process.Pid)
	}
	rel := "/" + filepath.Base(dir) + "/" + SupervisorLeaf
	if got := cgroupOf(t, cmd.Process.Pid); got != rel {
		t.Errorf("helper's cgroup = %s, want %s", got, rel)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
}

// The root of the hierarchy is never ours: Open would move the machine.
func TestRealRefusesRoot(t *testing.T) {
	loc, err := Detect("/")
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	if _, err := OpenAt(testLog(t), loc.Mount); !errors.Is(err, ErrNotDelegated) {
		t.Errorf("OpenAt(%s) err = %v, want ErrNotDelegated", loc.Mount, err)
	}
	if loc.Path == "/" {
		if _, err := Open(testLog(t)); !errors.Is(err, ErrNotDelegated) {
			t.Errorf("Open in the root cgroup: err = %v, want ErrNotDelegated", err)
		}
	}
}
