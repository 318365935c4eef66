package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/supervisor/cgroup"
)

// A scratch cgroup v2 directory stands in for what Delegate=yes gives a
// service: drover started inside it takes it over, and every worker runs
// in a cgroup of its own that dies with the worker. Runs where this host
// has a writable cgroup v2 hierarchy (as root); the lab proves the same
// under systemd with the shipped unit.
func TestWorkersInCgroupsOfTheirOwn(t *testing.T) {
	root := cgroup2Root(t)
	dir := filepath.Join(root, fmt.Sprintf("drover-cmd-test-%d", rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a scratch cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroupTree(t, dir) })

	// The shell moves itself into the scratch cgroup, then becomes drover.
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, dir)
	worker := fmt.Sprintf(`sleep 1000 & setsid sh -c 'sleep 1000 & echo $! > %s/daemon-$PPID' & exec %s -mode report -report-dir %s`,
		t.TempDir(), bin.testworker, t.TempDir())
	p := startProcess(t, "/bin/sh", "-c", script, "sh", bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "2", "--log-level", "debug", "--", "/bin/sh", "-c", worker)
	p.stderr.waitFor(t, "cgroup delegated: each worker gets its own cgroup")
	p.stderr.waitFor(t, "all 2 workers ready")

	workers := cgroupsUnder(t, dir)
	t.Logf("cgroups under %s: %v", dir, workers)
	got := mapsKeys(workers)
	slices.Sort(got)
	if len(got) != 3 || got[0] != "supervisor" || !strings.HasPrefix(got[1], "worker-") {
		t.Fatalf("cgroups under %s: %v, want supervisor and two worker-*", dir, got)
	}
	if procs := workers["supervisor"]; len(procs) != 1 || procs[0] != p.cmd.Process.Pid {
		t.Errorf("supervisor leaf holds %v, want drover (%d) alone", procs, p.cmd.Process.Pid)
	}
	var victim string
	var victimProcs []int
	for name, procs := range workers {
		if name != "supervisor" {
			victim, victimProcs = name, procs
			break
		}
	}
	// The worker, its sleeping child, and the setsid'd daemon: all in its
	// cgroup, however they left the process tree.
	if len(victimProcs) < 3 {
		t.Fatalf("%s holds %v, want the worker, its child and its daemon", victim, victimProcs)
	}
	workerPid := childOf(t, victimProcs, p.cmd.Process.Pid)
	syscall.Kill(workerPid, syscall.SIGKILL)
	waitPidsGone(t, victimProcs)
	p.stderr.waitFor(t, "restarting worker")
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := os.Stat(filepath.Join(dir, victim)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed worker's cgroup %s was not removed", victim)
		}
		time.Sleep(10 * time.Millisecond)
	}

	all := cgroupsUnder(t, dir)
	var pids []int
	for name, procs := range all {
		if name != "supervisor" {
			pids = append(pids, procs...)
		}
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("drover exited %d", code)
	}
	waitPidsGone(t, pids)
	if left := cgroupsUnder(t, dir); len(left) != 1 {
		t.Errorf("after drover's stop, cgroups left under %s: %v", dir, left)
	}
}

// cgroup2Root is this host's cgroup v2 mount (as drover finds it), or
// skips.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a scratch cgroup")
	}
	loc, err := cgroup.Detect("/")
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy on this host: %v", err)
	}
	return loc.Mount
}

// cgroupsUnder maps each child cgroup of dir to the pids in it.
func cgroupsUnder(t *testing.T, dir string) map[string][]int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name(), "cgroup.procs"))
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		out[e.Name()] = pids
	}
	return out
}

// removeCgroupTree kills what is left in dir and below and removes them.
func removeCgroupTree(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(t, filepath.Join(dir, e.Name()))
		}
	}
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return
		}
	}
}

func waitPidsGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for _, pid := range pids {
		for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still there", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childOf is the one of pids whose parent is parent.
func childOf(t *testing.T, pids []int, parent int) int {
	t.Helper()
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if _, rest, ok := strings.Cut(string(b), ") "); ok {
			if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(parent) {
				return pid
			}
		}
	}
	t.Fatalf("none of %v is a child of %d", pids, parent)
	return 0
}

func mapsKeys(m map[string][]int) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
