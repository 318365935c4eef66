package supervisor

import (
	"fmt"

	"github.com/droverd/drover/supervisor/control"
)

// scale changes the number of slots: new ones start workers of the serving
// generation (gated on readiness like any other), removed ones drain. It is
// refused while a start or reload is under way, so the two never race.
func (s *Supervisor) scale(spec string) (int, error) {
	relative, n, err := control.ParseScale(spec)
	if err != nil {
		return 0, err
	}
	target := n
	if relative {
		target = len(s.slots) + n
	}
	switch {
	case target < 1 || target > MaxWorkers:
		return 0, fmt.Errorf("scale %s: %d workers is outside 1..%d", spec, target, MaxWorkers)
	case s.phase == phaseStopping:
		return 0, fmt.Errorf("scale %s: drover is stopping", spec)
	case s.phase != phaseServing:
		return 0, fmt.Errorf("scale %s: a start or reload is under way; try again once it is done", spec)
	}
	from := len(s.slots)
	for len(s.slots) < target {
		sl := &slot{id: len(s.slots)}
		s.slots = append(s.slots, sl)
		sl.worker = s.startWorker(sl, s.current, nil)
	}
	for len(s.slots) > target {
		sl := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if sl.restartTimer != nil {
			sl.restartTimer.Stop()
			sl.restartTimer = nil
		}
		if sl == s.recycling {
			s.cancelRecycles()
		}
		if sl.recycleTimer != nil {
			sl.recycleTimer.Stop()
			sl.recycleTimer = nil
		}
		for _, w := range []*worker{sl.worker, sl.next} {
			if w != nil {
				s.stopWorker(w)
			}
		}
	}
	s.cfg.Workers = target
	s.log.WithField("from", from).Infof("scaled to %d workers", target)
	return target, nil
}
