package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/cgroup"
	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/cpus"
	"github.com/droverd/drover/supervisor/metrics"
	"github.com/droverd/drover/supervisor/notify"
	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/proctree"
	"github.com/droverd/drover/supervisor/sockets"
)

// Supervisor runs the workers. Create it with New, then call Run once.
type Supervisor struct {
	cfg     Config
	log     logrus.FieldLogger
	sockets []sockets.Socket
	// metrics is always counted; metricsServer serves it on the socket
	// kept for it, if any (metrics.go).
	metrics       *metrics.Metrics
	metricsSocket *sockets.Socket
	metricsServer *metrics.Server
	baseEnv       []string
	systemd       *notify.Systemd
	workerNotify  *notify.Listener
	control       *control.Server     // nil without a control socket
	output        output.Sink         // where worker output goes
	journal       *output.JournalSink // output, when it is journald
	spawner       *spawner
	env           env
	// pinDir holds the symlinks to pinned executables ("" if none could be
	// made: workers are then exec'd by path).
	pinDir     string
	removePins bool
	pinLock    *os.File // held on pinDir while drover lives (pin.go)

	events chan event
	// done is closed when Run returns, so goroutines with an event to post
	// give up instead of blocking forever.
	done chan struct{}
	wg   sync.WaitGroup

	// Owned by the event loop from here on.
	phase   phase
	slots   []*slot
	current *generation // the generation serving (or starting, at first)
	rollout *rollout    // a reload or rollback under way
	// pending holds reload requests that came during a rollout: they are
	// served together by one more reload after it (nil entries: SIGHUP).
	pending []chan<- error
	// pendingAnnounce: a queued request came by SIGHUP (requestReload).
	pendingAnnounce bool
	byPid           map[int]*worker
	restarts        int
	reloads         int
	reloadStarted   time.Time
	// reloadFailure says why the last reload failed, until one succeeds.
	reloadFailure string
	exitErr       error
	// Health (health.go, recycle.go, watchdog.go).
	sampling     bool // a health sample is being taken
	lastLiveness time.Time
	recycling    *slot // the slot whose recycle is under way
	recycleQueue []recycleRequest
	recycles     int
	hung         int
	// subreaper: orphans of workers come back to drover (contain.go).
	subreaper bool
	// cgroups is drover's delegated cgroup subtree, nil without one;
	// cgroupOf maps a live worker's pid to its cgroup (launch adds, the
	// worker's wait removes; killTree and sampling read).
	// procs maps a live worker's pid to its process (upgrade.go detaches
	// its output).
	procs sync.Map
	// exePath is drover's binary as it was at start: what an upgrade
	// executes (then /proc/self/exe names the replaced, deleted file).
	exePath string
	// started is when the first image started; upgraded and upgradedFrom
	// say when and from which version the last upgrade came (adopt.go).
	started      time.Time
	upgraded     time.Time
	upgradedFrom string
	// handover is the state this image adopts, nil after a plain start.
	handover *handover
	// unit is the systemd unit drover runs in, "" outside one or without
	// journald: the workers' journal streams name it.
	unit string
	// writeExecuteDenied: drover (and so every worker) runs under
	// MemoryDenyWriteExecute= (jit.go).
	writeExecuteDenied bool
	cgroups            *cgroup.Tree
	cgroupOf           sync.Map
	launches           int
	// checking counts the upgrade-checks running: a child drover waits
	// for itself, which reapOrphans, on the loop, must not take.
	checking atomic.Int32
}

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
		if cfg.Workers, err = cpus.Usable(); err != nil {
			return nil, fmt.Errorf("count usable CPUs for --workers auto: %w", err)
		}
	}
	s := &Supervisor{
		cfg:     cfg,
		log:     cfg.Log,
		systemd: notify.NewSystemd(cfg.NotifySocket),
		events:  make(chan event),
		done:    make(chan struct{}),
		byPid:   map[int]*worker{},
	}
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	s.env = realEnv{s}
	if cfg.Journal {
		s.journal = output.NewJournalSink(s.log, os.Stderr)
		s.output = s.journal
	} else {
		s.output = output.NewTextSink(os.Stdout, os.Stderr)
	}
	environ := cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	s.baseEnv = workerBaseEnv(environ)
	s.started, s.exePath = time.Now(), cfg.Executable
	if s.exePath == "" {
		// Resolved now: once a package replaced the file, /proc/self/exe
		// names the deleted one.
		s.exePath, _ = os.Executable()
	}
	if cfg.Handover != nil {
		err = s.adopt(cfg.Handover)
	} else {
		err = s.open()
	}
	if err != nil {
		return nil, err
	}
	if err := s.setupNode(); err != nil {
		return nil, err
	}
	s.openCgroups()
	if cfg.Journal {
		s.unit, _ = cgroup.Unit()
	}
	s.writeExecuteDenied = writeExecuteDenied()
	return s, nil
}

// open opens what a fresh drover needs: the sockets, the metrics
// endpoint, the workers' notify socket, the control socket, the pins.
func (s *Supervisor) open() (err error) {
	if err := s.openSockets(); err != nil {
		return err
	}
	if err := s.openMetrics(); err != nil {
		return err
	}
	if s.workerNotify, err = notify.Listen(); err != nil {
		return err
	}
	if s.cfg.ControlSocket != "" {
		if s.control, err = control.Listen(s.cfg.ControlSocket, s.log); err != nil {
			return usage(err)
		}
	}
	dir, lock, removed, pinErr := makePinDir(s.cfg.RuntimeDir)
	for _, stale := range removed {
		s.log.WithField("dir", stale).Info("removed the pin directory of a drover that is gone")
	}
	if pinErr == nil {
		s.pinDir, s.pinLock, s.removePins = dir, lock, true
	} else {
		s.log.WithError(pinErr).Warn("no place to pin the worker command: a rollback will run what is on disk then")
	}
	return nil
}

// openSockets takes systemd's sockets, or opens --listen's outside socket
// activation. Bad input satisfies errors.Is(err, ErrUsage).
func (s *Supervisor) openSockets() error {
	socks, activated, err := sockets.FromSystemd()
	if err != nil {
		return asUsage(err)
	}
	s.sockets = socks
	if activated {
		if err := s.takeMetricsSocket(); err != nil {
			return err
		}
		if len(s.cfg.Listen) > 0 {
			s.log.Info("socket-activated by systemd: ignoring --listen")
		}
		return nil
	}
	if len(s.cfg.Listen) == 0 {
		return usage(errors.New("no sockets: not socket-activated (LISTEN_FDS unset) and no --listen given"))
	}
	if s.sockets, err = sockets.Open(s.cfg.Listen); err != nil {
		return asUsage(err)
	}
	return nil
}

// asUsage marks the sockets package's errors in what drover was given as
// usage errors.
func asUsage(err error) error {
	if errors.Is(err, sockets.ErrInvalid) {
		return usage(err)
	}
	return err
}

// inodes are the sockets' inodes, in fd order: how a worker's /proc shows
// them.
func (s *Supervisor) inodes() []uint64 {
	inodes := make([]uint64, len(s.sockets))
	for i, sock := range s.sockets {
		inodes[i] = sock.Inode
	}
	return inodes
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

	signals := make(chan os.Signal, 16)
	watched := []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGCHLD}
	if s.cfg.TestHooks == "stall-on-sigusr2" {
		watched = append(watched, syscall.SIGUSR2)
	}
	signal.Notify(signals, watched...)
	defer signal.Stop(signals)
	if err := proctree.BecomeSubreaper(); err != nil {
		s.log.WithError(err).Warn("processes a worker starts may outlive it")
	} else {
		s.subreaper = true
	}

	s.wg.Add(1)
	go s.readWorkerNotify()
	s.serveMetrics()
	if s.control != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.control.Serve(s.handleRequest)
		}()
	}

	s.log.WithFields(logrus.Fields{
		"workers": s.cfg.Workers, "sockets": strings.Join(s.Addrs(), " "),
		"command": strings.Join(s.cfg.Command, " "), "ready": s.cfg.Ready.String(),
	}).Info("starting workers")
	if s.handover != nil {
		s.adoptWorkers(s.handover)
	} else {
		// systemd's TimeoutStartSec may be shorter than our ready timeout.
		s.logNotify(s.systemd.ExtendTimeout(addSaturated(s.cfg.ReadyTimeout, 10*time.Second)))
		if err := s.startFirstGeneration(); err != nil {
			return err
		}
	}
	s.loop(ctx, signals)
	s.killAllOrphans()
	if s.exitErr != nil {
		s.logNotify(s.systemd.Final("failed: " + s.exitErr.Error()))
		s.log.WithError(s.exitErr).Error("drover stopped")
	} else {
		// systemd keeps the last STATUS= after the unit stopped.
		s.logNotify(s.systemd.Final("stopped: all workers drained"))
		s.log.Info("all workers stopped")
	}
	return s.exitErr
}

// loop is the event loop: it handles one event at a time until drover is
// stopping and every worker is gone.
func (s *Supervisor) loop(ctx context.Context, signals <-chan os.Signal) {
	var watchdog <-chan time.Time
	if s.cfg.WatchdogInterval > 0 {
		t := time.NewTicker(s.cfg.WatchdogInterval / 2)
		defer t.Stop()
		watchdog = t.C
	}
	var health <-chan time.Time
	if d := s.healthInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		health = t.C
	}
	ctxDone := ctx.Done()
	for s.phase != phaseStopping || len(s.byPid) > 0 {
		select {
		case ev := <-s.events:
			s.handle(ev)
		case sig := <-signals:
			s.handleSignal(sig)
		case <-ctxDone:
			ctxDone = nil
			s.stop(nil, "stop requested")
		case <-watchdog:
			s.logNotify(s.systemd.Watchdog())
		case now := <-health:
			s.healthTick(now)
		}
		s.updateStatus()
	}
}

func (s *Supervisor) startFirstGeneration() error {
	gen, err := s.newGeneration(1)
	if err != nil {
		s.setPhase(phaseStopping)
		return err
	}
	s.current = gen
	for i := range s.cfg.Workers {
		sl := &slot{id: i}
		s.slots = append(s.slots, sl)
		if w := s.startWorker(sl, gen, nil); w != nil {
			sl.worker = w
		}
		if s.phase == phaseStopping {
			break // the start failed
		}
	}
	s.updateStatus()
	return nil
}

// newGeneration resolves the command in PATH again (a reload may find a new
// install) and pins what it finds, or else runs it by path: a full or
// broken runtime directory must not block a reload.
func (s *Supervisor) newGeneration(number int) (*generation, error) {
	path, err := exec.LookPath(s.cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("worker command %q: %w", s.cfg.Command[0], errors.Unwrap(err))
	}
	exe, err := openExe(path)
	if err != nil {
		return nil, err
	}
	if err := exe.pin(s.pinDir, number); err != nil {
		s.log.WithError(err).WithField("generation", number).Warn("cannot pin the worker command: this generation runs it by path, so a restart after the file changes runs the new file")
	}
	return &generation{number: number, state: generationStarting, exe: exe}, nil
}

// Reload asks the running loop to reload, as SIGHUP does, and waits for the
// result.
func (s *Supervisor) Reload() error { return s.reload("reload requested", true) }

func (s *Supervisor) reload(why string, announce bool) error {
	reply := make(chan error, 1)
	s.post(evReload{reply: reply, why: why, announce: announce})
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
	if s.cgroups != nil {
		if err := s.cgroups.Close(); err != nil {
			s.log.WithError(err).Warn("remove worker cgroups")
		}
	}
	if s.journal != nil {
		s.journal.Close()
	}
}

// closeResources closes what New opened; safe on a half-built Supervisor.
func (s *Supervisor) closeResources() {
	if s.workerNotify != nil {
		s.workerNotify.Close()
	}
	if s.control != nil {
		s.control.Close()
	}
	s.closeMetrics()
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
	if s.pinLock != nil {
		s.pinLock.Close()
		s.pinLock = nil
	}
}

// post hands an event to the loop, or drops it once the loop has ended.
func (s *Supervisor) post(ev event) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// logNotify logs a failed sd_notify: systemd missing one message is no
// reason to stop serving.
func (s *Supervisor) logNotify(err error) {
	if err != nil {
		s.log.WithError(err).Warn("sd_notify failed")
	}
}

func (s *Supervisor) handleSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		s.stop(nil, "received "+unix.SignalName(sig.(syscall.Signal)))
	case syscall.SIGHUP:
		s.requestReload(nil, "received SIGHUP", true)
	case syscall.SIGCHLD:
		s.reapOrphans()
	case syscall.SIGUSR2:
		s.log.Warn("test hook stall-on-sigusr2: blocking the event loop forever")
		select {}
	}
}

// readWorkerNotify turns the workers' datagrams into events until the
// socket is closed. A failed read (ENOBUFS, ENOMEM under pressure) is
// logged once and retried after a short pause, never the end of it.
func (s *Supervisor) readWorkerNotify() {
	defer s.wg.Done()
	var pause time.Duration
	for {
		msg, err := s.workerNotify.Read()
		if err == nil {
			pause = 0
			s.post(evNotify(msg))
			continue
		}
		select {
		case <-s.done:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return
		}
		if pause == 0 {
			s.log.WithError(err).Warn("read worker notify socket; retrying")
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		select {
		case <-s.done:
			return
		case <-time.After(pause):
		}
	}
}
