package supervisor

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The workers' watchdog (--worker-watchdog) is systemd's, with drover in
// systemd's place: each worker gets WATCHDOG_USEC and WATCHDOG_PID (its own
// pid, set by the trampoline) and pings WATCHDOG=1 to drover's
// NOTIFY_SOCKET, so a program that supports systemd's watchdog is watched
// unchanged. It arms when the worker is ready. A worker that misses its
// deadline, or sends WATCHDOG=trigger, is hung: drover logs it, sends
// --hang-signal (ABRT: systemd-coredump keeps a core, Go prints every
// goroutine's stack), SIGKILLs it --hang-grace later, and refills the slot
// at once. WATCHDOG_USEC=N from a worker sets its own interval, as with
// systemd; N=0 turns its watchdog off.

// evHang: a worker's watchdog deadline passed.
type evHang struct {
	w     *worker
	armed time.Time // the arming it belongs to; a later ping re-arms
}

// armWatchdog (re)starts w's deadline.
func (s *Supervisor) armWatchdog(w *worker) {
	if w.watchdogTimer != nil {
		w.watchdogTimer.Stop()
		w.watchdogTimer = nil
	}
	if w.watchdogInterval <= 0 || w.state != workerReady {
		return
	}
	armed := time.Now()
	w.watchdogArmed = armed
	w.watchdogTimer = time.AfterFunc(w.watchdogInterval, func() { s.post(evHang{w, armed}) })
}

// handleWatchdogNotify applies a worker's WATCHDOG= and WATCHDOG_USEC=.
func (s *Supervisor) handleWatchdogNotify(w *worker, fields map[string]string) {
	if usec, ok := fields["WATCHDOG_USEC"]; ok {
		if n, err := strconv.ParseUint(usec, 10, 63); err == nil {
			w.watchdogInterval = time.Duration(n) * time.Microsecond
			s.workerLog(w).WithField("interval", w.watchdogInterval).Info("worker set its watchdog interval")
			s.armWatchdog(w)
		}
	}
	switch fields["WATCHDOG"] {
	case "1":
		w.lastPing = time.Now()
		s.armWatchdog(w)
	case "trigger":
		s.hang(w, "sent WATCHDOG=trigger")
	}
}

func (s *Supervisor) handleHang(ev evHang) {
	w := ev.w
	if w.state != workerReady || !w.watchdogArmed.Equal(ev.armed) {
		return // pinged meanwhile, or moved on
	}
	since := "never pinged"
	if !w.lastPing.IsZero() {
		since = fmt.Sprintf("last WATCHDOG=1 %v ago", time.Since(w.lastPing).Round(time.Millisecond))
	}
	s.hang(w, fmt.Sprintf("no WATCHDOG=1 within %v (%s)", w.watchdogInterval, since))
}

// hang kills a hung worker: the hang signal, SIGKILL after the grace.
func (s *Supervisor) hang(w *worker, why string) {
	if w.state != workerReady {
		return
	}
	w.killedFor = &failure{failWatchdog, "hung: " + why}
	s.workerLog(w).WithFields(logrus.Fields{"reason": w.killedFor.detail, "status": w.status,
		"signal": unix.SignalName(s.cfg.HangSignal), "grace": s.cfg.HangGrace}).Error("worker hung: killing it")
	w.stopRequested = true
	s.move(w, workerDraining)
	w.endWatching()
	if err := s.env.signal(w.pid, s.cfg.HangSignal); err != nil {
		s.workerLog(w).WithError(err).Warn("send hang signal")
	}
	s.hung++
	w.timer = time.AfterFunc(s.cfg.HangGrace, func() { s.post(evStopTimeout{w}) })
}
