package supervisor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/notify"
)

func (s *Supervisor) workerLog(w *worker) logrus.FieldLogger {
	return s.log.WithFields(logrus.Fields{"worker": w.slot.id, "pid": w.pid, "generation": w.gen.number})
}

// move applies a state transition; an illegal one is a bug, logged loudly
// and otherwise ignored so one mistake cannot take down running workers.
func (s *Supervisor) move(w *worker, to workerState) bool {
	if err := w.moveTo(to); err != nil {
		s.workerLog(w).WithError(err).Error("bug: illegal worker state transition")
		return false
	}
	return true
}

// startWorker starts a worker of gen for sl, for rollout r (nil outside
// one), and watches its readiness. On failure to start it reports the
// failure and returns nil.
func (s *Supervisor) startWorker(sl *slot, gen *generation, r *rollout) *worker {
	w := &worker{slot: sl, gen: gen, rollout: r, state: workerStarting, started: time.Now()}
	pid, err := s.env.launch(sl.id, gen, func(e exit) { s.post(evExited{w: w, exit: e}) })
	if err != nil {
		s.log.WithFields(logrus.Fields{"worker": sl.id, "generation": gen.number}).WithError(err).Error("worker did not start")
		w.state = workerExited
		s.workerFailed(w, spawnFailure(err))
		return nil
	}
	w.pid = pid
	s.byPid[w.pid] = w
	s.workerLog(w).Info("worker started")

	w.timer = time.AfterFunc(s.cfg.ReadyTimeout, func() { s.post(evReadyTimeout{w}) })
	ctx, cancel := context.WithCancel(context.Background())
	w.cancelProbe = cancel
	switch s.cfg.Ready.Mode {
	case ReadyListen:
		s.env.watchReady(ctx, w.pid, s.workerLog(w), func() { s.post(evReady{w, "listen"}) })
	case ReadyDelay:
		t := time.AfterFunc(s.cfg.Ready.Delay, func() { s.post(evReady{w, "delay"}) })
		context.AfterFunc(ctx, func() { t.Stop() })
	case ReadyNotify:
		// READY=1 arrives through handleNotify.
	}
	return w
}

// endWatching stops what watches a worker's start or stop, and its health
// timers.
func (w *worker) endWatching() {
	for _, t := range []**time.Timer{&w.lifeTimer, &w.watchdogTimer} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
	if w.cancelProbe != nil {
		w.cancelProbe()
		w.cancelProbe = nil
	}
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

func (s *Supervisor) handleReady(w *worker, how string) {
	if w.state != workerStarting {
		return // a late probe or datagram for a worker that moved on
	}
	if !s.move(w, workerReady) {
		return
	}
	w.endWatching()
	w.readyAt = time.Now()
	s.workerLog(w).WithFields(logrus.Fields{"how": how, "took": w.readyAt.Sub(w.started).Round(time.Millisecond)}).Info("worker ready")
	// Health watches every ready worker, a recycle's replacement too.
	s.armLifetime(w)
	w.watchdogInterval = s.cfg.WorkerWatchdog
	s.armWatchdog(w)
	if w.replaces != nil && w.slot.next == w {
		s.recycleReady(w)
		return
	}
	if why, over := s.overMemoryAtReady(w); over {
		w.killedFor = &why
		s.kill(w)
		return
	}
	if s.rollout != nil && w.slot.next == w {
		s.rolloutWorkerReady(w)
		return
	}
	if s.phase == phaseStarting && s.readyCount(s.current) == len(s.slots) {
		s.moveGeneration(s.current, generationServing)
		s.setPhase(phaseServing)
		s.log.WithField("generation", s.current.number).Infof("all %d workers ready", len(s.slots))
		s.notifyReady(0)
		s.servePending()
		s.startRecycle()
	}
}

func (s *Supervisor) handleReadyTimeout(w *worker) {
	if w.state != workerStarting {
		return
	}
	w.killedFor = &failure{failNotReady, fmt.Sprintf("not ready within --ready-timeout %v (--ready %s)", s.cfg.ReadyTimeout, s.cfg.Ready)}
	w.endWatching()
	s.workerLog(w).Warn("worker " + w.killedFor.detail + "; killing it")
	s.kill(w)
}

func (s *Supervisor) handleStopTimeout(w *worker) {
	if w.state != workerDraining {
		return
	}
	w.timer = nil
	s.workerLog(w).Warnf("worker still running %v after the stop signal; sending SIGKILL", s.cfg.StopTimeout)
	s.kill(w)
}

// kill ends the worker and whatever it started.
func (s *Supervisor) kill(w *worker) {
	if w.state == workerExited {
		return
	}
	s.env.killTree(w.pid)
}

func (s *Supervisor) handleExit(w *worker, e exit) {
	if !s.move(w, workerExited) {
		return
	}
	w.endWatching()
	delete(s.byPid, w.pid)
	s.killLeftovers(w)
	sl := w.slot
	if sl.worker == w {
		sl.worker = nil
	}
	log := s.workerLog(w).WithField("exit", e.status.detail)
	if w.stopRequested && w.killedFor == nil {
		log.Info("worker exited")
		return
	}
	why := e.status
	switch {
	case e.execErr != "":
		// Name the command, not the pin it was exec'd through.
		why = failure{failExec, strings.ReplaceAll(e.execErr, w.gen.exe.execPath(), w.gen.exe.path)}
	case w.killedFor != nil:
		why = *w.killedFor
	case w.readyAt.IsZero() && s.writeExecuteDenied && jitCrash(e.signal):
		why.detail += "; " + writeExecuteHint
	}
	log.WithField("reason", why.detail).Warn("worker failed")
	if s.phase != phaseStopping {
		s.workerFailed(w, why)
	}
}

// workerFailed decides what follows a failure. During the first start it
// fails drover's start as a whole (so `systemctl start` fails with the
// reason, like a single service that died before READY=1). A worker of a
// rollout's generation aborts the rollout. Otherwise the slot restarts
// after a backoff, unless it is crash-looping.
func (s *Supervisor) workerFailed(w *worker, why failure) {
	sl := w.slot
	sl.lastFailure = why.kind
	switch {
	case s.phase == phaseStopping:
		return
	case w.replaces != nil:
		s.recycleFailed(w, why)
		return
	case s.rollout != nil && w.rollout == s.rollout:
		// Only workers the rollout started: during a rollback, an old
		// worker that happens to crash is an ordinary restart.
		s.rolloutWorkerFailed(w, why)
		return
	case why.kind == failResources:
		s.log.WithField("worker", sl.id).Warn("out of resources to start a worker (" + why.detail + "); trying again, not counted as a failure of the app")
		s.scheduleRestart(sl, w)
		return
	case s.phase == phaseStarting:
		s.stop(fmt.Errorf("%w: worker %d: %s", ErrStartFailed, sl.id, why), "start failed")
		return
	}
	now := time.Now()
	sl.pruneFailures(now, s.cfg.FailureWindow)
	sl.failures = append(sl.failures, now)
	if len(sl.failures) >= s.cfg.MaxFailures {
		s.metrics.CrashLooped()
		s.stop(fmt.Errorf("%w: worker %d failed %d times within %v; last: %s",
			ErrCrashLoop, sl.id, len(sl.failures), s.cfg.FailureWindow, why), "crash loop")
		return
	}
	s.scheduleRestart(sl, w)
}

// scheduleRestart refills sl: at once when the failed worker had been up
// MinUptime (capacity is down, and a crash after a long healthy run is no
// reason to wait, as PM2 does it), otherwise after a backoff that doubles
// with each consecutive quick failure.
func (s *Supervisor) scheduleRestart(sl *slot, failed *worker) {
	healthy := !failed.readyAt.IsZero() && time.Since(failed.readyAt) >= s.cfg.MinUptime
	// A hung worker was killed by drover; its slot is refilled at once.
	if healthy || (failed.killedFor != nil && failed.killedFor.kind == failWatchdog) {
		sl.consecutive = 0
		s.log.WithFields(logrus.Fields{"worker": sl.id, "in": time.Duration(0), "failures": len(sl.failures)}).Info("restarting worker")
		s.handleRestartDue(sl)
		return
	}
	sl.consecutive++
	delay := s.cfg.BackoffMin << min(sl.consecutive-1, 30)
	if delay > s.cfg.BackoffMax || delay <= 0 {
		delay = s.cfg.BackoffMax
	}
	s.log.WithFields(logrus.Fields{"worker": sl.id, "in": delay, "failures": len(sl.failures)}).Info("restarting worker")
	sl.restartTimer = time.AfterFunc(delay, func() { s.post(evRestartDue{sl}) })
}

func (s *Supervisor) handleRestartDue(sl *slot) {
	sl.restartTimer = nil
	// A rollout's new worker for this slot fills it once ready.
	if s.phase == phaseStopping || sl.worker != nil || sl.next != nil {
		return
	}
	s.restarts++
	sl.restarts++
	s.metrics.Restarted(sl.id, sl.lastFailure.String())
	sl.worker = s.startWorker(sl, s.current, nil)
}

// stop drains every worker; err (nil for a requested stop) is what Run
// returns. Stopping twice keeps the first drain going.
func (s *Supervisor) stop(err error, why string) {
	if s.phase == phaseStopping {
		s.log.WithField("workers_left", len(s.byPid)).Info(why + " while already stopping: the drain continues")
		return
	}
	s.setPhase(phaseStopping)
	s.exitErr = err
	s.cancelRecycles()
	if s.current.state != generationRetiring {
		s.moveGeneration(s.current, generationRetiring)
	}
	s.cancelReloads(fmt.Errorf("drover is stopping (%s)", why))
	for _, sl := range s.slots {
		if sl.restartTimer != nil {
			sl.restartTimer.Stop()
			sl.restartTimer = nil
		}
	}
	// systemd's TimeoutStopSec may be shorter than our drain: ask for the
	// drain plus time to SIGKILL and reap.
	s.logNotify(s.systemd.Stopping(addSaturated(s.cfg.StopTimeout, 5*time.Second)))
	s.log.WithFields(logrus.Fields{"workers": len(s.byPid), "signal": unix.SignalName(s.cfg.StopSignal), "timeout": s.cfg.StopTimeout}).Info(why + ": draining workers")
	for _, w := range s.byPid {
		s.stopWorker(w)
	}
}

// stopWorker asks a worker to drain and exit; SIGKILL follows at the stop
// timeout.
func (s *Supervisor) stopWorker(w *worker) {
	if w.state != workerStarting && w.state != workerReady {
		return
	}
	w.stopRequested = true
	s.move(w, workerDraining)
	w.endWatching()
	s.workerLog(w).Info("draining worker")
	if err := s.env.signal(w.pid, s.cfg.StopSignal); err != nil {
		s.workerLog(w).WithError(err).Warn("send stop signal")
	}
	w.timer = time.AfterFunc(s.cfg.StopTimeout, func() { s.post(evStopTimeout{w}) })
}

func (s *Supervisor) handleNotify(msg notify.Message) {
	w := s.byPid[msg.Pid]
	if w == nil {
		// Not a worker's main process (a worker's child, or a stranger):
		// ignored, as systemd does with NotifyAccess=main.
		s.log.WithField("pid", msg.Pid).Debug("notify datagram from a non-worker ignored")
		return
	}
	if st, ok := msg.Fields["STATUS"]; ok {
		w.status = st
	}
	if msg.Fields["READY"] == "1" && s.cfg.Ready.Mode == ReadyNotify {
		s.handleReady(w, "notify")
	}
	s.handleWatchdogNotify(w, msg.Fields)
}
