// Package cgroup gives each worker its own cgroup inside the cgroup v2
// subtree that systemd delegated to drover, so that a worker and everything
// it started, double-forked and setsid'd daemons included, can be counted,
// measured and killed as one.
//
// It owns drover's delegated subtree and nothing above it:
//
//	<our cgroup>/               Delegate=yes makes this ours
//	<our cgroup>/supervisor/    drover itself (and anything else found there)
//	<our cgroup>/<worker name>/ one per worker, named by the caller
//
// Open finds our cgroup from /proc/self/cgroup (the "0::" line) and the
// cgroup2 mount in /proc/self/mountinfo: /sys/fs/cgroup on a pure v2 host,
// /sys/fs/cgroup/unified in hybrid mode. The subtree is usable when we may
// create cgroups in it, which is what Delegate=yes grants. Because the
// kernel's "no internal processes" rule forbids enabling controllers for
// children while a cgroup holds processes itself, Open first moves every
// process of our cgroup into the supervisor leaf, then enables whatever
// controllers cgroup.controllers offers. When Open fails (no cgroup v2,
// nothing delegated, cgroup v1 only) the error says why and wraps
// ErrNotDelegated: the caller logs it once and falls back to process-tree
// containment (package proctree).
//
// A worker is best started straight into its cgroup with clone3's
// CLONE_INTO_CGROUP (syscall.SysProcAttr UseCgroupFD and CgroupFD set to
// Worker.FD): then not even its first instruction runs outside. Worker.Add
// moves a started process instead, for kernels without clone3 (before 5.7);
// a process it forks before the move stays outside.
//
// Worker.Kill uses cgroup.kill (Linux 5.14+), which kills every process in
// the cgroup at once. Without it, Kill freezes the cgroup (cgroup.freeze,
// Linux 5.2+; frozen tasks still die of SIGKILL) and sends SIGKILL to every
// pid in cgroup.procs until none is left, so processes cannot fork faster
// than they are killed.
//
// Limits: in hybrid mode the v2 tree carries no controllers (they are bound
// to v1), so MemoryCurrent reports nothing; CPUUsage works on every v2
// cgroup. As root, cgroupfs is writable whether or not systemd delegated it:
// Open refuses the root of the hierarchy but cannot otherwise tell a
// delegated cgroup from one that systemd merely let root write to; it logs
// whether systemd's trusted.delegate/user.delegate marker is there. In
// hybrid mode systemd puts that marker on the name=systemd v1 hierarchy, so
// its absence on the v2 directory proves nothing.
//
// Specifications:
//   - Linux Documentation/admin-guide/cgroup-v2.rst
//     (https://docs.kernel.org/admin-guide/cgroup-v2.html): cgroup.procs,
//     cgroup.subtree_control, "no internal process" constraint,
//     cgroup.events, cgroup.kill, cgroup.freeze, cpu.stat, memory.current.
//   - systemd.resource-control(5), Delegate=.
//   - https://systemd.io/CGROUP_DELEGATION/
//   - clone(2), CLONE_INTO_CGROUP.
package cgroup
