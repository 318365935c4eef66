package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cgroupTree lists the processes below a unit's cgroup in the hierarchy
// drover delegates in (unified v2, or /sys/fs/cgroup/unified on a hybrid
// host), by sub-cgroup: "" for the unit's cgroup itself, "supervisor",
// "worker-0-1", ... ok is false when there is no v2 view of the cgroup.
func (b *box) cgroupTree(cgroup string) (tree map[string][]int, ok bool) {
	b.t.Helper()
	for _, base := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		dir := base + cgroup
		if _, err := b.quiet("test", "-f", dir+"/cgroup.events"); err != nil {
			continue
		}
		out, _ := b.quiet("sh", "-c", `cd "$1" && for f in $(find . -name cgroup.procs); do echo "${f%/cgroup.procs}:" $(cat "$f"); done`, "sh", dir)
		tree = map[string][]int{}
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			name, pids, _ := strings.Cut(line, ":")
			name = strings.TrimPrefix(strings.TrimPrefix(name, "."), "/")
			tree[name] = nil
			for _, f := range strings.Fields(pids) {
				if pid, err := strconv.Atoi(f); err == nil {
					tree[name] = append(tree[name], pid)
				}
			}
		}
		return tree, true
	}
	return nil, false
}

// allPids is every pid in a cgroup tree, sorted.
func allPids(tree map[string][]int) []int {
	var all []int
	for _, pids := range tree {
		all = append(all, pids...)
	}
	slices.Sort(all)
	return all
}

// workerCgroupOf names the sub-cgroup that holds pid.
func workerCgroupOf(tree map[string][]int, pid int) string {
	for name, pids := range tree {
		if slices.Contains(pids, pid) {
			return name
		}
	}
	return ""
}

// testContainment: with the shipped unit (Delegate=yes), drover sits in
// the leaf "supervisor" and each worker in a cgroup of its own with
// everything it started. After kill -9 of a worker that has a child and a
// setsid'd daemon, the service holds drover, the live workers and their
// current children only; systemctl stop leaves nothing.
func testContainment(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", `/bin/sh -c 'sleep 1000 & setsid sh -c "sleep 1000 &" & exec `+MyappPath+`'`)))
	b.startByConnection()
	mainPid := b.mainPid()
	cg := b.showLogged("myapp.service", "ControlGroup")["ControlGroup"]
	ws := b.distinctWorkers(workers)
	var tree map[string][]int
	b.waitFor("each worker's cgroup to hold it, its child and its daemon", 10*time.Second, func() (bool, string) {
		var ok bool
		if tree, ok = b.cgroupTree(cg); !ok {
			b.t.Fatalf("no cgroup v2 view of %s", cg)
		}
		for _, w := range ws {
			if len(tree[workerCgroupOf(tree, w.Pid)]) < 3 {
				return false, fmt.Sprint(tree)
			}
		}
		return true, fmt.Sprint(tree)
	})
	if got := tree["supervisor"]; !slices.Equal(got, []int{mainPid}) {
		b.t.Errorf("leaf supervisor holds %v, want drover (%d)", got, mainPid)
	}
	victim := ws[0]
	victimCg := workerCgroupOf(tree, victim.Pid)
	if !strings.HasPrefix(victimCg, "worker-") {
		b.t.Fatalf("worker %d is in %q, want a worker-* cgroup of its own", victim.Pid, victimCg)
	}
	victimTree := tree[victimCg]
	cgls, _ := b.try("systemd-cgls", "--no-pager", "-u", "myapp.service")
	if !strings.Contains(cgls, "worker-") || !strings.Contains(cgls, "supervisor") {
		b.t.Errorf("systemd-cgls shows no per-worker grouping:\n%s", cgls)
	}

	b.sh("kill", "-9", strconv.Itoa(victim.Pid))
	b.waitFor(fmt.Sprintf("worker %d's child and daemon to die with it", victim.Pid), 10*time.Second, func() (bool, string) {
		left := b.alive(victimTree...)
		return len(left) == 0, fmt.Sprintf("still alive: %v", left)
	})
	b.waitFor("the slot to be refilled and the killed worker's cgroup removed", 15*time.Second, func() (bool, string) {
		tree, _ = b.cgroupTree(cg)
		_, stale := tree[victimCg]
		return !stale && len(tree) == workers+2 && len(allPids(tree)) == 1+3*workers, fmt.Sprint(tree)
	})
	b.t.Logf("after kill -9 of worker %d (%s: %v): %v", victim.Pid, victimCg, victimTree, tree)
	if own := tree[""]; len(own) > 0 {
		b.t.Errorf("the service's own cgroup holds %v, want nothing (all in leaves)", own)
	}
	pids := allPids(tree)
	b.sh("systemctl", "stop", "myapp.service", "myapp.socket")
	if left := b.alive(pids...); len(left) > 0 {
		b.t.Errorf("after stop, %v of %v are still alive", left, pids)
	}
	if procs, ok := b.cgroupProcs(cg); ok && len(procs) > 0 {
		b.t.Errorf("after stop, cgroup %s still holds %v", cg, procs)
	}
}
