package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/cgroup"
	"github.com/droverd/drover/supervisor/proctree"
)

// A worker is its whole process tree: nothing it started may outlive it,
// or it would keep the shared listening sockets (fds 3..) and answer
// connections meant for live workers.
//
// Where systemd delegates a cgroup v2 subtree (Delegate=yes), each worker
// starts inside a cgroup of its own (worker-<slot>-<n>, beside drover's own
// leaf "supervisor"): when the worker exits, its cgroup is killed, waited
// empty and removed, which catches every descendant however it escaped
// the process tree (spawn.go).
//
// Everywhere, drover is also a child subreaper (Run), so whatever a worker
// without a cgroup leaves behind when it exits (a plain child,
// a setsid'd one, a double-forked daemon) is reparented to drover instead
// of to PID 1, where drover finds it, kills it and reaps it.
//
// An orphan belongs to the worker that exited when it is in that worker's
// process group (every worker leads its own) or carries its slot and
// generation in its environment (DROVER_WORKER_ID and DROVER_GENERATION,
// inherited by whatever the worker starts). A descendant that left both
// (setsid and a scrubbed environment) is caught when drover exits, which
// kills every orphan left.

// killLeftovers kills what the exited worker w left behind. It runs in
// the loop before the slot is refilled, so that no new worker of the same
// slot and generation can be mistaken for w's.
func (s *Supervisor) killLeftovers(w *worker) {
	if !s.subreaper {
		return
	}
	orphans, err := proctree.Orphans(s.workerPids())
	if err != nil {
		s.workerLog(w).WithError(err).Warn("cannot list what the worker left behind")
		return
	}
	var mine []int
	for _, pid := range orphans {
		st, err := proctree.ReadStat(pid)
		if err != nil {
			continue // gone already
		}
		slot, gen, tagged := proctree.WorkerOf(pid)
		if st.Pgid == w.pid || (tagged && slot == w.slot.id && gen == w.gen.number) {
			mine = append(mine, pid)
		}
	}
	if len(mine) == 0 {
		return
	}
	for _, pid := range mine {
		if err := proctree.KillTree(pid, 0); err != nil {
			s.workerLog(w).WithError(err).Warn("kill what the worker left behind")
		}
	}
	if err := proctree.KillTree(0, w.pid); err != nil {
		s.workerLog(w).WithError(err).Warn("kill the worker's process group")
	}
	s.workerLog(w).WithField("pids", mine).Info("killed the processes the worker left behind")
}

// workerPids is every worker process drover started and has not handled
// the exit of.
func (s *Supervisor) workerPids() map[int]bool {
	pids := make(map[int]bool, len(s.byPid))
	for pid := range s.byPid {
		pids[pid] = true
	}
	return pids
}

// reapOrphans reaps the orphans that died (killed by killLeftovers, or by
// themselves). os/exec reaps the workers; a worker's pid is never taken
// here while its exit is still to be handled, nor anything while an
// upgrade-check runs (its child is drover's own, not an orphan).
func (s *Supervisor) reapOrphans() {
	if !s.subreaper || s.checking.Load() > 0 {
		return
	}
	if reaped := proctree.ReapOrphans(func(pid int) bool { return s.byPid[pid] != nil }); len(reaped) > 0 {
		s.log.WithField("pids", reaped).Debug("reaped orphans")
	}
}

// killAllOrphans runs when every worker is gone and drover is about to
// return: whatever any worker left, attributed or not, goes with drover.
func (s *Supervisor) killAllOrphans() {
	if !s.subreaper {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		orphans, err := proctree.Orphans(nil)
		if err != nil || len(orphans) == 0 {
			break
		}
		for _, pid := range orphans {
			proctree.KillTree(pid, 0)
		}
		s.log.WithField("pids", orphans).Info("killed processes the workers left behind")
		if time.Now().After(deadline) {
			s.log.WithFields(logrus.Fields{"pids": orphans}).Warn("processes the workers left behind do not die")
			break
		}
		time.Sleep(10 * time.Millisecond)
		s.reapOrphans()
	}
	s.reapOrphans()
}

// openCgroups takes over drover's delegated cgroup subtree, if it has one.
func (s *Supervisor) openCgroups() {
	tree, err := cgroup.Open(s.log)
	switch {
	case errors.Is(err, cgroup.ErrNotDelegated):
		s.log.WithError(err).Debug("no delegated cgroup (Delegate=yes on cgroup v2): workers are contained as drover's descendants")
	case err != nil:
		s.log.WithError(err).Warn("cannot set up the delegated cgroup: workers are contained as drover's descendants")
	default:
		s.cgroups = tree
	}
}

// workerCgroup creates the cgroup for a new worker of slot, nil without
// delegation or when it cannot be made (the worker then runs in drover's
// cgroup, contained as a descendant).
func (s *Supervisor) workerCgroup(slot int) *cgroup.Worker {
	if s.cgroups == nil {
		return nil
	}
	s.launches++
	cg, err := s.cgroups.NewWorker(fmt.Sprintf("worker-%d-%d", slot, s.launches))
	if err != nil {
		s.log.WithError(err).Warn("no cgroup for the worker: it runs in drover's own")
		return nil
	}
	return cg
}

// cgroupOfPid is a live worker's cgroup, or nil.
func (s *Supervisor) cgroupOfPid(pid int) *cgroup.Worker {
	if cg, ok := s.cgroupOf.Load(pid); ok {
		return cg.(*cgroup.Worker)
	}
	return nil
}
