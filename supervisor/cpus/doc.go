// Package cpus counts the CPUs this process may use, which is how many
// workers `--workers auto` starts: the affinity mask (sched_getaffinity(2),
// which cpusets and systemd's AllowedCPUs= narrow) and any CPU bandwidth
// quota on its cgroup or an ancestor, cgroup v1 (cpu.cfs_quota_us) or v2
// (cpu.max).
//
// Specs: sched_setaffinity(2); the kernel's cgroup v1 CFS bandwidth
// control (Documentation/scheduler/sched-bwc.rst) and cgroup v2 "cpu"
// interface files (Documentation/admin-guide/cgroup-v2.rst); mountinfo in
// proc(5).
package cpus
