package supervisor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/metrics"
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

// requestReload starts a reload, or queues it behind the start or rollout
// under way (however many come, one more reload serves them all). reply,
// if not nil, gets the result. announce says the request came the way
// systemd's Type=notify-reload sends it (SIGHUP), so systemd waits for
// RELOADING=1; a reload asked for on the control socket (ExecReload=drover
// reload, Type=notify) announces nothing: under Type=notify, RELOADING=1
// puts systemd 257 in a reload state that outlives a drover killed
// mid-reload by the length of the start timeout.
func (s *Supervisor) requestReload(reply chan<- error, why string, announce bool) {
	switch s.phase {
	case phaseStopping:
		if reply != nil {
			reply <- errors.New("drover is stopping")
		}
		return
	case phaseStarting, phaseReloading, phaseRollingBack:
		s.pending = append(s.pending, reply)
		s.pendingAnnounce = s.pendingAnnounce || announce
		s.log.Info(why + ": queued behind the reload (or start) under way")
		return
	}
	s.log.Info(why)
	s.beginReload([]chan<- error{reply}, announce)
}

// servePending starts the queued reload, if any, once nothing is under way.
func (s *Supervisor) servePending() {
	if len(s.pending) == 0 || s.phase != phaseServing {
		return
	}
	waiters, announce := s.pending, s.pendingAnnounce
	s.pending, s.pendingAnnounce = nil, false
	s.log.WithField("requests", len(waiters)).Info("starting the queued reload")
	s.beginReload(waiters, announce)
}

func (s *Supervisor) beginReload(waiters []chan<- error, announce bool) {
	s.cancelRecycles()
	s.reloads++
	s.reloadStarted = time.Now()
	s.setPhase(phaseReloading)
	if announce {
		// systemd (Type=notify-reload on 253+) waits for RELOADING=1
		// stamped no earlier than its signal, then READY=1.
		s.logNotify(s.systemd.Reloading())
	}

	gen, err := s.newGeneration(s.current.number + 1)
	if err != nil {
		s.endReload(waiters, fmt.Errorf("reload failed: %w; serving generation %d", err, s.current.number), unix.ENOENT)
		s.servePending()
		return
	}
	s.rollout = &rollout{target: gen, queue: append([]*slot(nil), s.slots...), waiters: waiters, started: time.Now()}
	s.log.WithFields(logrus.Fields{"generation": gen.number, "batch": s.cfg.ReloadBatch.of(len(s.slots))}).Info("reloading: starting the new generation")
	s.advanceRollout()
}

// endReload ends a reload, whether it succeeded (err nil) or not: systemd
// gets READY=1 (the old version still serves after a failure, with the
// reason in STATUS= and ERRNO=) and the waiters get err. The caller then
// starts a reload queued behind this one (servePending).
func (s *Supervisor) endReload(waiters []chan<- error, err error, errno unix.Errno) {
	s.rollout = nil
	s.setPhase(phaseServing)
	result := metrics.ReloadSucceeded
	if err != nil {
		s.log.WithError(err).Error("reload failed")
		s.reloadFailure = err.Error()
		result = metrics.ReloadFailed
	} else {
		s.reloadFailure = ""
	}
	s.metrics.Reloaded(result, time.Since(s.reloadStarted))
	s.notifyReady(errno)
	reply(waiters, err)
	s.startRecycle()
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
	if s.phase == phaseRollingBack {
		// The old generation is whole again.
		s.log.WithField("generation", s.current.number).Warn("rollback done: " + r.failure.Error())
		s.endReload(r.waiters, r.failure, r.errno)
		s.servePending()
		return
	}
	old := s.current
	s.moveGeneration(old, generationRetiring)
	old.exe.close()
	s.moveGeneration(r.target, generationServing)
	s.current = r.target
	s.log.WithFields(logrus.Fields{"generation": s.current.number, "took": time.Since(r.started).Round(time.Millisecond)}).Info("reload done")
	s.endReload(r.waiters, nil, 0)
	s.servePending()
}

// rolloutWorkerFailed aborts the rollout: the new generation's workers
// stop, and slots that had moved go back to the generation that served
// before, staged the same way so capacity never drops.
func (s *Supervisor) rolloutWorkerFailed(w *worker, why failure) {
	r := s.rollout
	if w.slot.next == w {
		w.slot.next = nil
		r.inFlight--
	}
	if s.phase == phaseRollingBack {
		s.rollbackFailed(r, w, why)
		return
	}
	failure := fmt.Errorf("reload failed: worker %d of generation %d: %s; serving generation %d", w.slot.id, r.target.number, why, s.current.number)
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
	s.moveGeneration(r.target, generationRetiring)
	r.target.exe.close()
	s.setPhase(phaseRollingBack)
	s.rollout = &rollout{target: s.current, queue: back, waiters: r.waiters, started: r.started, failure: failure, errno: why.errno()}
	s.advanceRollout()
}

// rollbackFailed ends a rollback that could not restore a slot: whatever
// serves keeps serving, and slots left without a worker go back to the
// ordinary restart path, which backs off and counts toward a crash loop.
func (s *Supervisor) rollbackFailed(r *rollout, w *worker, why failure) {
	err := fmt.Errorf("%w; restoring generation %d failed too: worker %d: %s", r.failure, r.target.number, w.slot.id, why)
	s.endReload(r.waiters, err, r.errno)
	for _, sl := range s.slots {
		if sl.worker == nil && sl.next == nil && sl.restartTimer == nil {
			s.workerFailed(&worker{slot: sl, gen: s.current, state: workerExited}, failure{failRollback, "rollback failed"})
		}
	}
	s.servePending()
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
