package supervisor

import "fmt"

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
	switch r := s.rollout; {
	case s.stopping:
		return fmt.Sprintf("stopping: draining %d workers", len(s.byPid))
	case s.current.state == generationStarting:
		return fmt.Sprintf("starting: %d/%d workers ready · generation %d", s.readyCount(s.current), n, s.current.number)
	case r != nil && r.failure != nil:
		return fmt.Sprintf("reload failed, rolling back: %d/%d ready · generation %d", s.readyCount(s.current), n, s.current.number)
	case r != nil:
		return fmt.Sprintf("reloading: %d/%d new ready · generation %d", s.readyCount(r.target), n, r.target.number)
	}
	if s.reloadFailure != "" {
		// Kept until a reload succeeds, so `systemctl status` says why the
		// old version still serves.
		return fmt.Sprintf("%s · %d/%d workers ready · %d restarts", s.reloadFailure, s.readyCount(s.current), n, s.restarts)
	}
	return fmt.Sprintf("%d/%d workers ready · generation %d · %d restarts", s.readyCount(s.current), n, s.current.number, s.restarts)
}

func (s *Supervisor) updateStatus() {
	if s.current == nil {
		return
	}
	if err := s.notifier.status(s.statusLine()); err != nil {
		s.log.WithError(err).Warn("sd_notify failed")
	}
}
