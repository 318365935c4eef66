package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Supervisor runs the workers. Create it with New, then call Run once.
type Supervisor struct {
	cfg          Config
	log          logrus.FieldLogger
	path         string // Command[0] resolved in PATH
	sockets      []Socket
	baseEnv      []string
	notifier     *systemdNotifier
	workerNotify *workerNotifySocket
	spawner      *spawner

	events chan event
	// done is closed when Run returns, so goroutines with an event to post
	// give up instead of blocking forever.
	done chan struct{}
	wg   sync.WaitGroup

	// Owned by the event loop from here on.
	slots    []*slot
	gen      *generation
	byPid    map[int]*worker
	restarts int
	stopping bool
	exitErr  error
}

// slot is one of the N worker positions. It keeps its id (DROVER_WORKER_ID)
// and its failure history across the workers that fill it.
type slot struct {
	id           int
	worker       *worker // nil while backing off
	failures     []time.Time
	consecutive  int // failures since a worker last stayed up MinUptime
	restartTimer *time.Timer
}

// worker is one process in a slot.
type worker struct {
	slot    *slot
	gen     *generation
	proc    *process
	pid     int
	state   workerState
	started time.Time
	readyAt time.Time
	// stopRequested: drover asked it to exit, so its exit is no failure
	// unless failure says otherwise.
	stopRequested bool
	// failure is why drover killed it (e.g. not ready in time).
	failure string
	// status is the worker's own STATUS= line.
	status      string
	timer       *time.Timer // the ready timeout, then the stop timeout
	cancelProbe context.CancelFunc
}

// generation is all the workers started from one version of the command.
type generation struct {
	number int
	state  generationState
}

type event any

type (
	evExited struct {
		w       *worker
		state   *os.ProcessState
		execErr string
	}
	evReady struct {
		w   *worker
		how string
	}
	evReadyTimeout struct{ w *worker }
	evStopTimeout  struct{ w *worker }
	evRestartDue   struct{ s *slot }
	evNotify       notifyMessage
)

// New checks the configuration, resolves the command and takes or opens the
// sockets. Errors in what the user asked for satisfy errors.Is(err, ErrUsage).
func New(cfg Config) (*Supervisor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, usage(fmt.Errorf("worker command %q: %w", cfg.Command[0], errors.Unwrap(err)))
	}
	if cfg.Workers == 0 {
		if cfg.Workers, err = UsableCPUs(); err != nil {
			return nil, fmt.Errorf("count usable CPUs for --workers auto: %w", err)
		}
	}
	sockets, activated, err := systemdSockets()
	if err != nil {
		return nil, err
	}
	if activated {
		if len(cfg.Listen) > 0 {
			cfg.Log.Info("socket-activated by systemd: ignoring --listen")
		}
	} else {
		if len(cfg.Listen) == 0 {
			return nil, usage(errors.New("no sockets: not socket-activated (LISTEN_FDS unset) and no --listen given"))
		}
		if sockets, err = openSockets(cfg.Listen); err != nil {
			return nil, err
		}
	}
	environ := cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	workerNotify, err := listenWorkerNotify()
	if err != nil {
		for _, s := range sockets {
			s.Close()
		}
		return nil, err
	}
	return &Supervisor{
		cfg:          cfg,
		log:          cfg.Log,
		path:         path,
		sockets:      sockets,
		baseEnv:      workerBaseEnv(environ),
		notifier:     &systemdNotifier{addr: cfg.NotifySocket},
		workerNotify: workerNotify,
		events:       make(chan event),
		done:         make(chan struct{}),
		byPid:        map[int]*worker{},
	}, nil
}

// Addrs returns the local addresses of the sockets, in fd order.
func (s *Supervisor) Addrs() []string {
	addrs := make([]string, len(s.sockets))
	for i, sock := range s.sockets {
		addrs[i] = sock.Addr
	}
	return addrs
}

// Run starts the workers and supervises them until ctx is cancelled or
// SIGTERM/SIGINT arrives (then it drains them and returns nil), or until
// the start or a crash loop fails (then it stops them and returns why).
func (s *Supervisor) Run(ctx context.Context) error {
	s.spawner = newSpawner()
	defer s.cleanup()

	signals := make(chan os.Signal, 4)
	watched := []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}
	if s.cfg.TestHooks == "stall-on-sigusr2" {
		watched = append(watched, syscall.SIGUSR2)
	}
	signal.Notify(signals, watched...)
	defer signal.Stop(signals)

	s.wg.Add(1)
	go s.readWorkerNotify()

	var watchdog <-chan time.Time
	if s.cfg.WatchdogInterval > 0 {
		t := time.NewTicker(s.cfg.WatchdogInterval / 2)
		defer t.Stop()
		watchdog = t.C
	}

	s.log.WithFields(logrus.Fields{
		"workers": s.cfg.Workers, "sockets": strings.Join(s.Addrs(), " "),
		"command": strings.Join(s.cfg.Command, " "), "ready": s.cfg.Ready.String(),
	}).Info("starting workers")
	s.gen = &generation{number: 1, state: generationStarting}
	s.notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (s.cfg.ReadyTimeout + 10*time.Second).Microseconds()))
	for i := range s.cfg.Workers {
		sl := &slot{id: i}
		s.slots = append(s.slots, sl)
		s.startWorker(sl)
	}
	s.updateStatus()

	ctxDone := ctx.Done()
	for !s.stopping || len(s.byPid) > 0 {
		select {
		case ev := <-s.events:
			s.handle(ev)
		case sig := <-signals:
			s.handleSignal(sig)
		case <-ctxDone:
			ctxDone = nil
			s.stop(nil, "stop requested")
		case <-watchdog:
			s.notify("WATCHDOG=1")
		}
	}
	if s.exitErr != nil {
		s.notify("STATUS=failed: " + s.exitErr.Error())
		s.log.WithError(s.exitErr).Error("drover stopped")
	} else {
		s.log.Info("all workers stopped")
	}
	return s.exitErr
}

func (s *Supervisor) cleanup() {
	close(s.done)
	s.workerNotify.close()
	for _, sl := range s.slots {
		if sl.restartTimer != nil {
			sl.restartTimer.Stop()
		}
	}
	s.wg.Wait()
	s.spawner.close()
	for _, sock := range s.sockets {
		sock.Close()
	}
}

// post hands an event to the loop, or drops it once the loop has ended.
func (s *Supervisor) post(ev event) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

func (s *Supervisor) notify(state string) {
	if err := s.notifier.send(state); err != nil {
		s.log.WithError(err).Warn("sd_notify failed")
	}
}

func (s *Supervisor) handle(ev event) {
	switch ev := ev.(type) {
	case evExited:
		s.handleExit(ev.w, ev.state, ev.execErr)
	case evReady:
		s.handleReady(ev.w, ev.how)
	case evReadyTimeout:
		s.handleReadyTimeout(ev.w)
	case evStopTimeout:
		s.handleStopTimeout(ev.w)
	case evRestartDue:
		ev.s.restartTimer = nil
		if !s.stopping && ev.s.worker == nil {
			s.restarts++
			s.startWorker(ev.s)
		}
	case evNotify:
		s.handleNotify(notifyMessage(ev))
	default:
		panic(fmt.Sprintf("supervisor: unknown event %T", ev))
	}
	s.updateStatus()
}

func (s *Supervisor) handleSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		s.stop(nil, "received "+unix.SignalName(sig.(syscall.Signal)))
	case syscall.SIGHUP:
		s.log.Warn("SIGHUP: reload is not implemented yet; keeping the current workers")
	case syscall.SIGUSR2:
		s.log.Warn("test hook stall-on-sigusr2: blocking the event loop forever")
		select {}
	}
}

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

func (s *Supervisor) startWorker(sl *slot) {
	proc, err := s.launch(sl.id, s.gen.number)
	if err != nil {
		s.log.WithField("worker", sl.id).WithError(err).Error("worker did not start")
		s.slotFailed(sl, 0, err.Error())
		return
	}
	w := &worker{slot: sl, gen: s.gen, proc: proc, pid: proc.pid, state: workerStarting, started: time.Now()}
	sl.worker = w
	s.byPid[w.pid] = w
	s.workerLog(w).Info("worker started")

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		state, execErr := proc.wait()
		s.post(evExited{w: w, state: state, execErr: execErr})
	}()
	w.timer = time.AfterFunc(s.cfg.ReadyTimeout, func() { s.post(evReadyTimeout{w}) })
	switch s.cfg.Ready.Mode {
	case ReadyListen:
		ctx, cancel := context.WithCancel(context.Background())
		w.cancelProbe = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.probeListening(ctx, w)
		}()
	case ReadyDelay:
		ctx, cancel := context.WithCancel(context.Background())
		w.cancelProbe = cancel
		t := time.AfterFunc(s.cfg.Ready.Delay, func() { s.post(evReady{w, "delay"}) })
		context.AfterFunc(ctx, func() { t.Stop() })
	case ReadyNotify:
		// READY=1 arrives through handleNotify.
	}
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
	if s.gen.state == generationStarting && s.readyCount() == len(s.slots) {
		if err := s.gen.moveTo(generationServing); err != nil {
			s.log.WithError(err).Error("bug: illegal generation state transition")
		}
		s.log.WithField("generation", s.gen.number).Infof("all %d workers ready", len(s.slots))
		s.notifier.lastStatus = s.statusLine()
		s.notify("READY=1\nSTATUS=" + s.notifier.lastStatus)
	}
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
		reason = execErr
	case w.failure != "":
		reason = w.failure
	}
	log.WithField("reason", reason).Warn("worker failed")
	if s.stopping {
		return
	}
	var upFor time.Duration
	if !w.readyAt.IsZero() {
		upFor = time.Since(w.readyAt)
	}
	s.slotFailed(sl, upFor, reason)
}

// slotFailed decides what follows a failure: during the first start it
// fails drover's start as a whole (so `systemctl start` fails with the
// reason, like a single service that died before READY=1); later it is a
// restart after backoff, unless the slot is crash-looping.
func (s *Supervisor) slotFailed(sl *slot, upFor time.Duration, reason string) {
	if s.gen.state == generationStarting {
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
	if upFor >= s.cfg.MinUptime {
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
	if s.gen.state != generationRetiring {
		s.gen.moveTo(generationRetiring)
	}
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

func (s *Supervisor) stopWorker(w *worker) {
	if w.state != workerStarting && w.state != workerReady {
		return
	}
	w.stopRequested = true
	s.move(w, workerDraining)
	w.endWatching()
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

func (s *Supervisor) readWorkerNotify() {
	defer s.wg.Done()
	for {
		msg, err := s.workerNotify.read()
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				select {
				case <-s.done:
				default:
					s.log.WithError(err).Error("read worker notify socket")
				}
			}
			return
		}
		if msg.pid != 0 {
			s.post(evNotify(msg))
		}
	}
}

func (s *Supervisor) readyCount() int {
	n := 0
	for _, sl := range s.slots {
		if sl.worker != nil && sl.worker.state == workerReady {
			n++
		}
	}
	return n
}

func (s *Supervisor) statusLine() string {
	switch {
	case s.stopping:
		return fmt.Sprintf("stopping: draining %d workers", len(s.byPid))
	case s.gen.state == generationStarting:
		return fmt.Sprintf("starting: %d/%d workers ready · generation %d", s.readyCount(), len(s.slots), s.gen.number)
	}
	return fmt.Sprintf("%d/%d workers ready · generation %d · %d restarts", s.readyCount(), len(s.slots), s.gen.number, s.restarts)
}

func (s *Supervisor) updateStatus() {
	if err := s.notifier.status(s.statusLine()); err != nil {
		s.log.WithError(err).Warn("sd_notify failed")
	}
}
