package supervisor

import (
	"time"

	"github.com/sirupsen/logrus"
)

// A recycle replaces one ready worker without downtime, for a reason of
// health (memory, age, liveness): a replacement starts in the same slot,
// gated on readiness exactly as in a reload, and only then does the old
// worker get the stop signal and drain. If the replacement fails, the old
// worker keeps serving, and the recycle is tried again after a backoff.
// Recycles are not failures: they never count toward a crash loop.
//
// One recycle runs at a time, so capacity never drops by more than the
// slot being replaced, however many workers are due together; the others
// wait their turn. A reload cancels a recycle under way (it replaces every
// worker anyway).

// evRecycleDue asks for a recycle of w (its age, or a retry).
type evRecycleDue struct {
	w      *worker
	kind   recycleKind
	reason string
}

// recycleKind is what a recycle is for, in bounded words (the reason
// label of drover_worker_recycles_total); the reason says more.
type recycleKind string

const (
	recycleMemory       recycleKind = "memory"
	recycleLifetime     recycleKind = "lifetime"
	recycleNotListening recycleKind = "not-listening"
)

// recycleRequest is a recycle waiting its turn.
type recycleRequest struct {
	w      *worker
	kind   recycleKind
	reason string
}

// requestRecycle queues a recycle of w, unless one is queued or under way
// for it already.
func (s *Supervisor) requestRecycle(w *worker, kind recycleKind, reason string) {
	if w.state != workerReady || w.slot.worker != w || w.recycleWanted {
		return
	}
	w.recycleWanted = true
	s.recycleQueue = append(s.recycleQueue, recycleRequest{w, kind, reason})
	s.startRecycle()
}

// startRecycle starts the next queued recycle, if nothing else is under
// way: a recycle, a start, a reload.
func (s *Supervisor) startRecycle() {
	for s.recycling == nil && s.phase == phaseServing && len(s.recycleQueue) > 0 {
		req := s.recycleQueue[0]
		s.recycleQueue = s.recycleQueue[1:]
		old, sl := req.w, req.w.slot
		if old.state != workerReady || sl.worker != old || sl.next != nil {
			old.recycleWanted = false
			continue
		}
		s.workerLog(old).WithField("reason", req.reason).Info("recycling worker: starting its replacement")
		s.recycling = sl
		sl.recycleReason, sl.recycleKind = req.reason, req.kind
		next := s.startWorker(sl, s.current, nil)
		if next == nil {
			return // workerFailed saw it: recycleFailed ran
		}
		next.replaces = old
		sl.next = next
	}
}

// recycleReady moves the slot to the replacement and drains the old
// worker.
func (s *Supervisor) recycleReady(w *worker) {
	sl := w.slot
	old := w.replaces
	if why, over := s.overMemoryAtReady(w); over {
		w.killedFor = &why
		s.kill(w)
		return
	}
	sl.worker, sl.next = w, nil
	s.recycling = nil
	sl.recycles++
	sl.recycleBackoff = 0
	s.recycles++
	s.metrics.Recycled(sl.id, string(sl.recycleKind))
	s.workerLog(w).WithFields(logrus.Fields{"reason": sl.recycleReason, "replaced": old.pid}).Info("worker recycled")
	s.stopWorker(old)
	s.startRecycle()
}

// recycleFailed handles a replacement that failed: the old worker keeps
// serving, and the recycle is asked for again after a backoff.
func (s *Supervisor) recycleFailed(w *worker, why failure) {
	sl := w.slot
	old := w.replaces
	if sl.next == w {
		sl.next = nil
	}
	s.recycling = nil
	sl.recycleBackoff = min(max(2*sl.recycleBackoff, s.cfg.BackoffMin), s.cfg.BackoffMax)
	log := s.log.WithFields(logrus.Fields{"worker": sl.id, "reason": sl.recycleReason, "failure": why.detail, "in": sl.recycleBackoff})
	switch {
	case old != nil && sl.worker == old && old.state == workerReady:
		log.Warn("recycle failed: the old worker keeps serving; trying again")
		old.recycleWanted = false
		kind, reason := sl.recycleKind, sl.recycleReason
		sl.recycleTimer = time.AfterFunc(sl.recycleBackoff, func() { s.post(evRecycleDue{old, kind, reason}) })
	case sl.worker == nil && sl.restartTimer == nil:
		// The old worker died meanwhile: an ordinary restart refills it.
		log.Warn("recycle failed, and the old worker is gone: restarting the slot")
		s.scheduleRestart(sl, w)
	}
	s.startRecycle()
}

// cancelRecycles stops a recycle under way and forgets the queued ones: a
// reload replaces every worker anyway, and drover stopping needs none.
func (s *Supervisor) cancelRecycles() {
	for _, req := range s.recycleQueue {
		req.w.recycleWanted = false
	}
	s.recycleQueue = nil
	for _, sl := range s.slots {
		if sl.recycleTimer != nil {
			sl.recycleTimer.Stop()
			sl.recycleTimer = nil
		}
	}
	if sl := s.recycling; sl != nil {
		s.recycling = nil
		if next := sl.next; next != nil {
			sl.next = nil
			next.replaces = nil
			s.stopWorker(next)
		}
		if sl.worker != nil {
			sl.worker.recycleWanted = false
		}
	}
}
