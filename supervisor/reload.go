package supervisor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// rollout moves slots to target, a batch at a time: each slot's new worker
// must be ready before its old worker is told to drain. A reload is a
// rollout to a new generation; when it fails, a rollback is a rollout back
// to the generation that was serving, for the slots that had moved.
type rollout struct {
	target   *generation
	queue    []*slot // slots not started yet
	inFlight int     // new workers starting
	waiters  []chan<- error
	started  time.Time
	// failure is set on a rollback: why the reload failed, reported to the
	// waiters once the old generation is whole again.
	failure error
	errno   unix.Errno
}

// Batch is a parsed --reload-batch: a count, or a percentage of the
// workers.
type Batch struct {
	Count   int
	Percent int
}

// ParseBatch parses --reload-batch: N (at least 1) or P% (1 to 100).
func ParseBatch(s string) (Batch, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return Batch{}, usage(fmt.Errorf("--reload-batch %q: want a count or a percentage from 1%% to 100%%", s))
		}
		return Batch{Percent: n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return Batch{}, usage(fmt.Errorf("--reload-batch %q: want a count of at least 1 or a percentage", s))
	}
	return Batch{Count: n}, nil
}

// of returns how many of n workers make a batch: at least 1.
func (b Batch) of(n int) int {
	size := b.Count
	if b.Percent > 0 {
		size = n * b.Percent / 100
	}
	return max(1, min(size, n))
}

// requestReload starts a reload, or queues it behind the one under way
// (however many come, one more reload serves them all). reply, if not nil,
// gets the result.
func (s *Supervisor) requestReload(reply chan<- error, why string) {
	switch {
	case s.stopping:
		if reply != nil {
			reply <- errors.New("drover is stopping")
		}
		return
	case s.rollout != nil || s.current.state == generationStarting:
		s.pending = append(s.pending, reply)
		s.log.Info(why + ": queued behind the reload (or start) under way")
		return
	}
	s.log.Info(why)
	s.beginReload([]chan<- error{reply})
}

// servePending starts the queued reload, if any, once nothing is under way.
func (s *Supervisor) servePending() {
	if len(s.pending) == 0 || s.rollout != nil || s.stopping {
		return
	}
	waiters := s.pending
	s.pending = nil
	s.log.WithField("requests", len(waiters)).Info("starting the queued reload")
	s.beginReload(waiters)
}

func (s *Supervisor) beginReload(waiters []chan<- error) {
	s.reloads++
	// systemd (Type=notify-reload on 253+) waits for RELOADING=1 stamped no
	// earlier than its signal, then READY=1.
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	s.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", now.Nano()/1000))

	gen, err := s.newGeneration(s.current.number + 1)
	if err != nil {
		err = fmt.Errorf("reload failed: %w; serving generation %d", err, s.current.number)
		s.log.WithError(err).Error("reload failed")
		s.reloadFailure = err.Error()
		s.notifyReady(unix.ENOENT)
		reply(waiters, err)
		return
	}
	s.rollout = &rollout{target: gen, queue: append([]*slot(nil), s.slots...), waiters: waiters, started: time.Now()}
	s.log.WithFields(logrus.Fields{"generation": gen.number, "batch": s.cfg.ReloadBatch.of(len(s.slots))}).Info("reloading: starting the new generation")
	s.advanceRollout()
}

func reply(waiters []chan<- error, err error) {
	for _, w := range waiters {
		if w != nil {
			w <- err
		}
	}
}

// advanceRollout starts new workers up to the batch size, and finishes the
// rollout when every slot has moved.
func (s *Supervisor) advanceRollout() {
	r := s.rollout
	batch := s.cfg.ReloadBatch.of(len(s.slots))
	for r.inFlight < batch && len(r.queue) > 0 && s.rollout == r {
		sl := r.queue[0]
		r.queue = r.queue[1:]
		if w := s.startWorker(sl, r.target, r); w != nil {
			sl.next = w
			r.inFlight++
		}
	}
	if s.rollout == r && r.inFlight == 0 && len(r.queue) == 0 {
		s.finishRollout()
	}
}

// rolloutWorkerReady moves the worker's slot to it and drains the old one.
func (s *Supervisor) rolloutWorkerReady(w *worker) {
	sl := w.slot
	old := sl.worker
	sl.worker, sl.next = w, nil
	s.rollout.inFlight--
	if old != nil {
		s.stopWorker(old)
	}
	s.advanceRollout()
}

func (s *Supervisor) finishRollout() {
	r := s.rollout
	s.rollout = nil
	if r.failure != nil {
		// A rollback: the old generation is whole again.
		s.log.WithField("generation", s.current.number).Warn("rollback done: " + r.failure.Error())
		s.reloadFailure = r.failure.Error()
		s.notifyReady(r.errno)
		reply(r.waiters, r.failure)
		s.servePending()
		return
	}
	old := s.current
	old.moveTo(generationRetiring)
	old.exe.close()
	r.target.moveTo(generationServing)
	s.current = r.target
	s.log.WithFields(logrus.Fields{"generation": s.current.number, "took": time.Since(r.started).Round(time.Millisecond)}).Info("reload done")
	s.reloadFailure = ""
	s.notifyReady(0)
	reply(r.waiters, nil)
	s.servePending()
}

// rolloutWorkerFailed aborts the rollout: the new generation's workers
// stop, and slots that had moved go back to the generation that served
// before, staged the same way so capacity never drops.
func (s *Supervisor) rolloutWorkerFailed(w *worker, reason string) {
	r := s.rollout
	if w.slot.next == w {
		w.slot.next = nil
		r.inFlight--
	}
	if r.failure != nil {
		// The rollback itself failed: keep whatever serves, report.
		s.rollout = nil
		err := fmt.Errorf("%w; restoring generation %d failed too: worker %d: %s", r.failure, r.target.number, w.slot.id, reason)
		s.log.WithError(err).Error("rollback failed")
		s.reloadFailure = err.Error()
		s.notifyReady(r.errno)
		reply(r.waiters, err)
		// Slots left without a worker go back to the ordinary restart
		// path, which backs off and counts toward a crash loop.
		for _, sl := range s.slots {
			if sl.worker == nil && sl.next == nil && sl.restartTimer == nil {
				s.workerFailed(&worker{slot: sl, gen: s.current, state: workerExited}, "rollback failed")
			}
		}
		s.servePending()
		return
	}
	failure := fmt.Errorf("reload failed: worker %d of generation %d: %s; serving generation %d", w.slot.id, r.target.number, reason, s.current.number)
	s.log.WithError(failure).Warn("reload aborted: rolling back")
	var back []*slot
	for _, sl := range s.slots {
		if sl.next != nil {
			s.stopWorker(sl.next)
			sl.next = nil
		}
		moved := sl.worker != nil && sl.worker.gen == r.target
		empty := sl.worker == nil && sl.restartTimer == nil
		if moved || empty {
			back = append(back, sl)
		}
	}
	r.target.moveTo(generationRetiring)
	r.target.exe.close()
	s.rollout = &rollout{target: s.current, queue: back, waiters: r.waiters, started: r.started, failure: failure, errno: errnoFor(reason)}
	s.advanceRollout()
}

// errnoFor picks the ERRNO= systemd shows with a failed reload.
func errnoFor(reason string) unix.Errno {
	switch {
	case strings.HasPrefix(reason, "exec "):
		return unix.ENOEXEC
	case strings.HasPrefix(reason, "not ready within"):
		return unix.ETIMEDOUT
	}
	return unix.ECHILD
}

// cancelReloads answers every waiting reload request with err (drover is
// stopping).
func (s *Supervisor) cancelReloads(err error) {
	if s.rollout != nil {
		reply(s.rollout.waiters, err)
		s.rollout.waiters = nil
	}
	reply(s.pending, err)
	s.pending = nil
}
