package supervisor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
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
	proc, err := s.launch(sl.id, gen)
	if err != nil {
		s.log.WithFields(logrus.Fields{"worker": sl.id, "generation": gen.number}).WithError(err).Error("worker did not start")
		s.workerFailed(&worker{slot: sl, gen: gen, rollout: r, state: workerExited}, err.Error())
		return nil
	}
	w := &worker{slot: sl, gen: gen, rollout: r, proc: proc, pid: proc.pid, state: workerStarting, started: time.Now()}
	s.byPid[w.pid] = w
	s.workerLog(w).Info("worker started")

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		state, execErr := proc.wait()
		s.post(evExited{w: w, state: state, execErr: execErr})
		// Output a worker's child still writes is forwarded until drover
		// ends.
		select {
		case <-proc.out.done:
		case <-s.done:
			proc.out.close()
		}
	}()
	w.timer = time.AfterFunc(s.cfg.ReadyTimeout, func() { s.post(evReadyTimeout{w}) })
	ctx, cancel := context.WithCancel(context.Background())
	w.cancelProbe = cancel
	switch s.cfg.Ready.Mode {
	case ReadyListen:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.probeListening(ctx, w)
		}()
	case ReadyDelay:
		t := time.AfterFunc(s.cfg.Ready.Delay, func() { s.post(evReady{w, "delay"}) })
		context.AfterFunc(ctx, func() { t.Stop() })
	case ReadyNotify:
		// READY=1 arrives through handleNotify.
	}
	return w
}

// endWatching stops what watches a worker's start or stop.
func (w *worker) endWatching() {
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
	if r := s.rollout; r != nil && w.slot.next == w {
		s.rolloutWorkerReady(w)
		return
	}
	if s.current.state == generationStarting && s.readyCount(s.current) == len(s.slots) {
		if err := s.current.moveTo(generationServing); err != nil {
			s.log.WithError(err).Error("bug: illegal generation state transition")
		}
		s.log.WithField("generation", s.current.number).Infof("all %d workers ready", len(s.slots))
		s.notifyReady(0)
		s.servePending()
	}
}

// notifyReady sends READY=1 with the current status line, and ERRNO= when
// not 0 (a failed reload).
func (s *Supervisor) notifyReady(errno unix.Errno) {
	s.notifier.lastStatus = s.statusLine()
	msg := "READY=1\nSTATUS=" + s.notifier.lastStatus
	if errno != 0 {
		msg += fmt.Sprintf("\nERRNO=%d", int(errno))
	}
	s.notify(msg)
}

func (s *Supervisor) handleReadyTimeout(w *worker) {
	if w.state != workerStarting {
		return
	}
	w.failure = fmt.Sprintf("not ready within --ready-timeout %v (--ready %s)", s.cfg.ReadyTimeout, s.cfg.Ready)
	w.endWatching()
	s.workerLog(w).Warn("worker " + w.failure + "; killing it")
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

// kill sends SIGKILL to the worker's process group, so that whatever the
// worker forked goes too (under systemd, KillMode=mixed would catch it; in
// dev mode nothing else would).
func (s *Supervisor) kill(w *worker) {
	if w.state == workerExited {
		return
	}
	unix.Kill(-w.pid, unix.SIGKILL)
	unix.Kill(w.pid, unix.SIGKILL)
}

func (s *Supervisor) handleExit(w *worker, ps *os.ProcessState, execErr string) {
	if !s.move(w, workerExited) {
		return
	}
	w.endWatching()
	delete(s.byPid, w.pid)
	sl := w.slot
	if sl.worker == w {
		sl.worker = nil
	}
	how := describeExit(ps)
	log := s.workerLog(w).WithField("exit", how)
	if w.stopRequested && w.failure == "" {
		log.Info("worker exited")
		return
	}
	reason := how
	switch {
	case execErr != "":
		// Name the command, not the pin it was exec'd through.
		reason = strings.ReplaceAll(execErr, w.gen.exe.execPath(), w.gen.exe.path)
	case w.failure != "":
		reason = w.failure
	}
	log.WithField("reason", reason).Warn("worker failed")
	if !s.stopping {
		s.workerFailed(w, reason)
	}
}

// workerFailed decides what follows a failure. During the first start it
// fails drover's start as a whole (so `systemctl start` fails with the
// reason, like a single service that died before READY=1). A worker of a
// rollout's generation aborts the rollout. Otherwise the slot restarts
// after a backoff, unless it is crash-looping.
func (s *Supervisor) workerFailed(w *worker, reason string) {
	sl := w.slot
	switch {
	case s.stopping:
		return
	case s.rollout != nil && w.rollout == s.rollout:
		// Only workers the rollout started: during a rollback, an old
		// worker that happens to crash is an ordinary restart.
		s.rolloutWorkerFailed(w, reason)
		return
	case w.gen == s.current && s.current.state == generationStarting:
		s.stop(fmt.Errorf("%w: worker %d: %s", ErrStartFailed, sl.id, reason), "start failed")
		return
	}
	now := time.Now()
	kept := sl.failures[:0]
	for _, t := range sl.failures {
		if now.Sub(t) < s.cfg.FailureWindow {
			kept = append(kept, t)
		}
	}
	sl.failures = append(kept, now)
	if len(sl.failures) >= s.cfg.MaxFailures {
		s.stop(fmt.Errorf("%w: worker %d failed %d times within %v; last: %s",
			ErrCrashLoop, sl.id, len(sl.failures), s.cfg.FailureWindow, reason), "crash loop")
		return
	}
	if !w.readyAt.IsZero() && now.Sub(w.readyAt) >= s.cfg.MinUptime {
		sl.consecutive = 0
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
	if s.stopping || sl.worker != nil || sl.next != nil {
		return
	}
	s.restarts++
	sl.restarts++
	sl.worker = s.startWorker(sl, s.current, nil)
}

func describeExit(ps *os.ProcessState) string {
	if ps == nil {
		return "unknown"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// stop drains every worker; err (nil for a requested stop) is what Run
// returns. Stopping twice keeps the first drain going.
func (s *Supervisor) stop(err error, why string) {
	if s.stopping {
		s.log.WithField("workers_left", len(s.byPid)).Info(why + " while already stopping: the drain continues")
		return
	}
	s.stopping = true
	s.exitErr = err
	if s.current.state != generationRetiring {
		s.current.moveTo(generationRetiring)
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
	s.notify(fmt.Sprintf("STOPPING=1\nEXTEND_TIMEOUT_USEC=%d", (s.cfg.StopTimeout + 5*time.Second).Microseconds()))
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
	if err := unix.Kill(w.pid, s.cfg.StopSignal); err != nil {
		s.workerLog(w).WithError(err).Warn("send stop signal")
	}
	w.timer = time.AfterFunc(s.cfg.StopTimeout, func() { s.post(evStopTimeout{w}) })
}

func (s *Supervisor) handleNotify(msg notifyMessage) {
	w := s.byPid[msg.pid]
	if w == nil {
		// Not a worker's main process (a worker's child, or a stranger):
		// ignored, as systemd does with NotifyAccess=main.
		s.log.WithField("pid", msg.pid).Debug("notify datagram from a non-worker ignored")
		return
	}
	if st, ok := msg.fields["STATUS"]; ok {
		w.status = st
	}
	if msg.fields["READY"] == "1" && s.cfg.Ready.Mode == ReadyNotify {
		s.handleReady(w, "notify")
	}
}
