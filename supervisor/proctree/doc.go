// Package proctree contains a worker's process tree where no cgroup is
// delegated to drover (dev mode, cgroup v1 hosts): it finds, attributes,
// kills and reaps the processes a worker started, using only /proc, signals
// and prctl.
//
// # How it holds the tree together
//
// BecomeSubreaper (prctl PR_SET_CHILD_SUBREAPER) makes drover the process
// that adopts every orphan among its descendants, instead of PID 1. Since a
// process is only ever reparented to its nearest living subreaper ancestor,
// everything a worker forks stays a descendant of drover until it dies,
// double-forked and setsid'd daemons included. While its parent lives a
// process is found with Descendants; once its parent died it is a child of
// drover that no os/exec Cmd knows: Orphans lists those.
//
// # Attribution
//
// An orphan no longer says which worker it came from, so Attribute decides
// in this order, from exact to rough:
//
//  1. Its environment: drover sets DROVER_WORKER_ID and DROVER_GENERATION in
//     every worker, and children inherit them (WorkerOf reads
//     /proc/PID/environ). This holds for setsid'd, double-forked daemons.
//  2. Its process group: each worker leads its own group, which its
//     children join unless they call setpgid or setsid. A group id cannot
//     be reused while the group has members, so a match is safe.
//  3. Nothing: the orphan is some worker's (drover starts no other
//     children), and when a single worker died recently the caller may
//     blame that one. Which worker is alive matters: an orphan of a live
//     worker may be a daemon that worker meant to start; kill a worker's
//     orphans when the worker is gone.
//
// # Killing and reaping
//
// KillTree stops the whole tree with SIGSTOP, round after round until a
// /proc scan finds nothing new (a stopped process cannot fork), then sends
// SIGKILL to all of it: a tree cannot grow faster than it is killed.
//
// A per-child Cmd.Wait never reaps adopted orphans. ReapOrphans waits for
// them one by one by pid with WNOHANG, never with wait(-1), so it cannot
// steal the exit status of a child an os/exec Cmd is waiting for.
//
// WaitExit waits for a child's exit on a pidfd in the Go runtime's poller:
// a parked goroutine per child instead of an OS thread blocked in waitid
// (what os.Process.Wait does, pidfd or not), after which Cmd.Wait returns at
// once.
//
// # Limits
//
//   - A process that clears its environment (exec with a new one, or
//     overwriting its environ area) and leaves the worker's process group
//     can only be attributed by rule 3.
//   - /proc/PID/environ is readable only for processes of our uid that are
//     dumpable (not setuid, no PR_SET_DUMPABLE 0), unless we have
//     CAP_SYS_PTRACE.
//   - A descendant that makes itself a subreaper adopts its own orphans; they
//     stay in drover's tree, below it, and reach drover when it dies.
//   - Processes a worker asks someone else to start (systemd-run, cron, a
//     D-Bus activated service) are not its descendants; only a cgroup
//     (package cgroup) or systemd itself catches those.
//   - Pids are numbers: every function that takes one needs a process that
//     has not been reaped yet (a live child, a zombie, or a pid just read
//     from /proc), else the number may name a stranger.
//   - /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN) is used where the
//     kernel has it; otherwise, as on the host these tests ran on, every
//     lookup scans /proc/*/stat, which costs one read per process.
//   - /proc must be the one of drover's pid namespace.
//
// Specifications: prctl(2) PR_SET_CHILD_SUBREAPER; proc(5) /proc/PID/stat,
// /proc/PID/environ, /proc/PID/task/TID/children; wait4(2), waitid(2);
// pidfd_open(2).
package proctree
