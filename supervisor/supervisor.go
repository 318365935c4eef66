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
	sockets      []Socket
	baseEnv      []string
	notifier     *systemdNotifier
	workerNotify *workerNotifySocket
	control      *controlServer // nil without a control socket
	output       logSink        // where worker output goes
	journal      *journalSink   // output, when it is journald
	spawner      *spawner
	// pinDir holds the symlinks to pinned executables ("" if none could be
	// made: workers are then exec'd by path).
	pinDir     string
	removePins bool

	events chan event
	// done is closed when Run returns, so goroutines with an event to post
	// give up instead of blocking forever.
	done chan struct{}
	wg   sync.WaitGroup

	// Owned by the event loop from here on.
	slots   []*slot
	current *generation // the generation serving (or starting, at first)
	rollout *rollout    // a reload or rollback under way
	// pending holds reload requests that came during a rollout: they are
	// served together by one more reload after it (nil entries: SIGHUP).
	pending  []chan<- error
	byPid    map[int]*worker
	restarts int
	reloads  int
	// reloadFailure says why the last reload failed, until one succeeds.
	reloadFailure string
	stopping      bool
	exitErr       error
}

// slot is one of the N worker positions. It keeps its id (DROVER_WORKER_ID)
// and its failure history across the workers that fill it.
type slot struct {
	id     int
	worker *worker // serving or starting; nil while backing off
	// next is a worker of a rollout's generation starting to replace
	// worker; it takes the slot once ready.
	next         *worker
	failures     []time.Time
	consecutive  int // failures since a worker last stayed up MinUptime
	restartTimer *time.Timer
	restarts     int
}

// worker is one process in a slot.
type worker struct {
	slot    *slot
	gen     *generation
	rollout *rollout // the rollout that started it, if any
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
	exe    *pinnedExe
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
	evReload       struct{ reply chan<- error }
)

// New checks the configuration, resolves the command and takes or opens the
// sockets. Errors in what the user asked for satisfy errors.Is(err, ErrUsage).
func New(cfg Config) (_ *Supervisor, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(cfg.Command[0]); err != nil {
		return nil, usage(fmt.Errorf("worker command %q: %w", cfg.Command[0], errors.Unwrap(err)))
	}
	if cfg.Workers == 0 {
		if cfg.Workers, err = UsableCPUs(); err != nil {
			return nil, fmt.Errorf("count usable CPUs for --workers auto: %w", err)
		}
	}
	s := &Supervisor{
		cfg:      cfg,
		log:      cfg.Log,
		notifier: &systemdNotifier{addr: cfg.NotifySocket},
		events:   make(chan event),
		done:     make(chan struct{}),
		byPid:    map[int]*worker{},
	}
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	if cfg.Journal {
		s.journal = newJournalSink(s.log, os.Stderr)
		s.output = s.journal
	} else {
		s.output = newTextSink(os.Stdout, os.Stderr)
	}
	var activated bool
	if s.sockets, activated, err = systemdSockets(); err != nil {
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
		if s.sockets, err = openSockets(cfg.Listen); err != nil {
			return nil, err
		}
	}
	environ := cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	s.baseEnv = workerBaseEnv(environ)
	if s.workerNotify, err = listenWorkerNotify(); err != nil {
		return nil, err
	}
	if cfg.ControlSocket != "" {
		if s.control, err = listenControl(cfg.ControlSocket); err != nil {
			return nil, err
		}
	}
	if dir, err := os.MkdirTemp(cfg.RuntimeDir, "drover-exe-"); err == nil {
		s.pinDir, s.removePins = dir, true
	} else {
		s.log.WithError(err).Warn("no place to pin the worker command: a rollback will run what is on disk then")
	}
	return s, nil
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
// SIGHUP reloads, as does Reload.
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
	if s.control != nil {
		s.wg.Add(1)
		go s.serveControl()
	}

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
	// systemd's TimeoutStartSec may be shorter than our ready timeout.
	s.notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (s.cfg.ReadyTimeout + 10*time.Second).Microseconds()))
	if err := s.startFirstGeneration(); err != nil {
		return err
	}

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
		s.updateStatus()
	}
	if s.exitErr != nil {
		s.notify("STATUS=failed: " + s.exitErr.Error())
		s.log.WithError(s.exitErr).Error("drover stopped")
	} else {
		// systemd keeps the last STATUS= after the unit stopped.
		s.notify("STATUS=stopped: all workers drained")
		s.log.Info("all workers stopped")
	}
	return s.exitErr
}

func (s *Supervisor) startFirstGeneration() error {
	gen, err := s.newGeneration(1)
	if err != nil {
		s.stopping = true
		return err
	}
	s.current = gen
	for i := range s.cfg.Workers {
		sl := &slot{id: i}
		s.slots = append(s.slots, sl)
		if w := s.startWorker(sl, gen, nil); w != nil {
			sl.worker = w
		}
		if s.stopping {
			break // the start failed
		}
	}
	s.updateStatus()
	return nil
}

// newGeneration resolves the command in PATH again (a reload may find a new
// install) and pins what it finds.
func (s *Supervisor) newGeneration(number int) (*generation, error) {
	path, err := exec.LookPath(s.cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("worker command %q: %w", s.cfg.Command[0], errors.Unwrap(err))
	}
	exe, err := pinExe(path, s.pinDir, number)
	if err != nil {
		return nil, err
	}
	return &generation{number: number, state: generationStarting, exe: exe}, nil
}

// Reload asks the running loop to reload and waits for the result.
func (s *Supervisor) Reload() error {
	reply := make(chan error, 1)
	s.post(evReload{reply: reply})
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return errors.New("drover stopped")
	}
}

func (s *Supervisor) cleanup() {
	close(s.done)
	for _, sl := range s.slots {
		if sl.restartTimer != nil {
			sl.restartTimer.Stop()
		}
	}
	s.closeResources()
	s.wg.Wait()
	s.spawner.close()
	if s.journal != nil {
		s.journal.close()
	}
}

// closeResources closes what New opened; safe on a half-built Supervisor.
func (s *Supervisor) closeResources() {
	if s.workerNotify != nil {
		s.workerNotify.close()
	}
	if s.control != nil {
		s.control.listener.Close()
	}
	for _, sock := range s.sockets {
		sock.Close()
	}
	if s.current != nil {
		s.current.exe.close()
	}
	if s.rollout != nil {
		s.rollout.target.exe.close()
	}
	if s.removePins {
		os.RemoveAll(s.pinDir)
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
		s.handleRestartDue(ev.s)
	case evNotify:
		s.handleNotify(notifyMessage(ev))
	case evReload:
		s.requestReload(ev.reply, "reload requested")
	case evControl:
		s.handleControl(ev)
	default:
		panic(fmt.Sprintf("supervisor: unknown event %T", ev))
	}
}

func (s *Supervisor) handleControl(ev evControl) {
	switch ev.req.Command {
	case "status":
		ev.reply <- ControlResponse{OK: true, Status: s.status()}
	case "scale":
		n, err := s.scale(ev.req.Count)
		if err != nil {
			ev.reply <- ControlResponse{Error: err.Error()}
			return
		}
		ev.reply <- ControlResponse{OK: true, Workers: n}
	case "reload":
		done := make(chan error, 1)
		s.requestReload(done, "reload requested on the control socket")
		// The answer comes when the reload ends; wait for it off the loop.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case err := <-done:
				if err != nil {
					ev.reply <- ControlResponse{Error: err.Error()}
				} else {
					ev.reply <- ControlResponse{OK: true}
				}
			case <-s.done:
			}
		}()
	}
}

func (s *Supervisor) handleSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		s.stop(nil, "received "+unix.SignalName(sig.(syscall.Signal)))
	case syscall.SIGHUP:
		s.requestReload(nil, "received SIGHUP")
	case syscall.SIGUSR2:
		s.log.Warn("test hook stall-on-sigusr2: blocking the event loop forever")
		select {}
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
