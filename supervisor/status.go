package supervisor

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/control"
)

// readyCount counts slots served by a ready worker of gen.
func (s *Supervisor) readyCount(gen *generation) int {
	n := 0
	for _, sl := range s.slots {
		if sl.worker != nil && sl.worker.gen == gen && sl.worker.state == workerReady {
			n++
		}
	}
	return n
}

// statusLine is the one line systemd shows in `systemctl status`.
func (s *Supervisor) statusLine() string {
	n := len(s.slots)
	switch s.phase {
	case phaseStopping:
		return fmt.Sprintf("stopping: draining %d workers", len(s.byPid))
	case phaseStarting:
		return fmt.Sprintf("starting: %d/%d workers ready · generation %d", s.readyCount(s.current), n, s.current.number)
	case phaseRollingBack:
		return fmt.Sprintf("reload failed, rolling back: %d/%d ready · generation %d", s.readyCount(s.current), n, s.current.number)
	case phaseReloading:
		return fmt.Sprintf("reloading: %d/%d new ready · generation %d", s.readyCount(s.rollout.target), n, s.rollout.target.number)
	}
	if s.reloadFailure != "" {
		// Kept until a reload succeeds, so `systemctl status` says why the
		// old version still serves.
		return fmt.Sprintf("%s · %d/%d workers ready · %d restarts", s.reloadFailure, s.readyCount(s.current), n, s.restarts) + s.healthNote()
	}
	return fmt.Sprintf("%d/%d workers ready · generation %d · %d restarts", s.readyCount(s.current), n, s.current.number, s.restarts) + s.healthNote()
}

// healthNote names a recycle or a hung worker under way, for STATUS=.
func (s *Supervisor) healthNote() string {
	note := ""
	if sl := s.recycling; sl != nil {
		note += fmt.Sprintf(" · recycling worker %d (%s)", sl.id, sl.recycleReason)
	}
	for _, w := range s.byPid {
		if w.killedFor != nil && w.killedFor.kind == failWatchdog && w.state == workerDraining {
			note += fmt.Sprintf(" · worker %d hung, killing it", w.slot.id)
		}
	}
	return note
}

func (s *Supervisor) updateStatus() {
	if s.current == nil {
		return
	}
	s.logNotify(s.systemd.Status(s.statusLine()))
}

// notifyReady sends READY=1 with the current status line, and ERRNO= when
// not 0 (a failed reload).
func (s *Supervisor) notifyReady(errno unix.Errno) {
	s.logNotify(s.systemd.Ready(s.statusLine(), errno))
}

// status takes a snapshot; called by the event loop.
func (s *Supervisor) status() *control.Status {
	st := &control.Status{
		Pid:             os.Getpid(),
		Version:         s.cfg.Version,
		Started:         s.started,
		Upgraded:        s.upgraded,
		UpgradedFrom:    s.upgradedFrom,
		State:           s.phase.String(),
		StatusText:      s.statusLine(),
		Generation:      s.current.number,
		Workers:         len(s.slots),
		Ready:           s.readyCount(s.current),
		Restarts:        s.restarts,
		Recycles:        s.recycles,
		Reloads:         s.reloads,
		LastReloadError: s.reloadFailure,
		Sockets:         s.Addrs(),
		Command:         s.cfg.Command,
	}
	inSlot := map[*worker]bool{}
	for _, sl := range s.slots {
		for _, w := range []*worker{sl.worker, sl.next} {
			if w != nil {
				inSlot[w] = true
				st.Processes = append(st.Processes, workerStatus(w))
			}
		}
		if sl.worker == nil && sl.next == nil {
			st.Processes = append(st.Processes, control.WorkerStatus{Slot: sl.id, State: "backing-off", Restarts: sl.restarts})
		}
	}
	for _, w := range s.byPid {
		if !inSlot[w] {
			st.Processes = append(st.Processes, workerStatus(w))
		}
	}
	return st
}

func workerStatus(w *worker) control.WorkerStatus {
	st := control.WorkerStatus{
		Slot: w.slot.id, Pid: w.pid, Generation: w.gen.number,
		Started: w.started, Restarts: w.slot.restarts, Status: w.status,
		Recycles: w.slot.recycles, LastRecycle: w.slot.recycleReason, LastPing: w.lastPing,
		MemoryBytes: max(w.memory, 0),
	}
	st.State = w.shownState()
	return st
}

// shownState is the worker's state as status and metrics show it: a
// worker drover is killing because it hung is "hung", not "draining".
func (w *worker) shownState() string {
	if w.killedFor != nil && w.killedFor.kind == failWatchdog {
		return "hung"
	}
	return w.state.String()
}
