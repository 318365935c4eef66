package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor"
	"github.com/droverd/drover/supervisor/journal"
	"github.com/droverd/drover/supervisor/sockets"
)

// runOptions holds the raw flag values of `drover run`.
type runOptions struct {
	listen       []sockets.ListenSpec
	workers      string
	ready        string
	readyTimeout time.Duration
	stopSignal   string
	stopTimeout  time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	minUptime    time.Duration
	maxFailures  int
	window       time.Duration
	reloadBatch  string
	health       healthOptions
	metrics      metricsOptions
	control      string
	logFormat    string
	logIdent     string
	logLevel     string
	node         bool
}

func runFlags() (*pflag.FlagSet, *runOptions) {
	o := &runOptions{}
	fs := pflag.NewFlagSet("drover run", pflag.ContinueOnError)
	fs.Func("listen", "`[NAME=]ADDR` to listen on when not socket-activated: 127.0.0.1:8080, [::1]:8080, :8080 or unix:/path (repeatable; NAME goes to LISTEN_FDNAMES)", func(s string) error {
		spec, err := sockets.ParseListen(s)
		if err == nil {
			o.listen = append(o.listen, spec)
		}
		return err
	})
	fs.StringVar(&o.workers, "workers", "auto", "number of workers, or auto: one per CPU this process may use (affinity and cgroup CPU quota)")
	fs.StringVar(&o.ready, "ready", "listen", "when a worker is ready: listen (waiting for connections on every socket, seen in /proc), notify (sent READY=1 to $NOTIFY_SOCKET) or delay=DURATION")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 30*time.Second, "a worker not ready by then is killed and counts as a failed start (at most 24h)")
	fs.StringVar(&o.stopSignal, "stop-signal", "TERM", "signal that asks a worker to drain and exit (PM2 sends INT, nginx drains on QUIT)")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "how long a worker may drain before SIGKILL (at most 24h)")
	fs.DurationVar(&o.backoffMin, "backoff-min", 100*time.Millisecond, "delay before restarting a worker that failed within --min-uptime; doubles with each consecutive such failure (at most 24h)")
	fs.DurationVar(&o.backoffMax, "backoff-max", 15*time.Second, "longest delay before restarting a failed worker (at most 24h)")
	fs.DurationVar(&o.minUptime, "min-uptime", time.Second, "a worker that fails after being ready this long is restarted at once; quicker failures back off")
	fs.IntVar(&o.maxFailures, "max-failures", 5, "this many failures of one worker slot within --failure-window is a crash loop: drover stops and exits 1")
	fs.DurationVar(&o.window, "failure-window", time.Minute, "window for --max-failures")
	fs.BoolVar(&o.node, "node", false, "the workers are Node apps: drover's preload makes listen(PORT) serve on the inherited socket of that port, process.send('ready') count as READY=1, the stop signal drain the app's servers, and the event loop ping --worker-watchdog")
	fs.StringVar(&o.reloadBatch, "reload-batch", "1", "how many new workers start at once during a reload: a count or a percentage (25%)")
	o.health.flags(fs)
	o.metrics.flags(fs)
	fs.StringVar(&o.control, "control", "", "control socket for drover reload (default $RUNTIME_DIRECTORY/control.sock when systemd sets RuntimeDirectory=)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "drover's own log when not under journald: text or json (under journald: native journal entries with fields)")
	fs.StringVar(&o.logIdent, "log-identifier", "", "SYSLOG_IDENTIFIER of the workers' output in the journal (default: the command's base name)")
	return fs, o
}

func runCmd() *cobra.Command {
	fs, o := runFlags()
	c := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARGS...]",
		Short: "supervise COMMAND as one worker per core",
		Long: `Runs COMMAND as N workers. Under systemd socket activation every worker gets
systemd's sockets; otherwise drover opens the --listen addresses. Each worker
sees exactly what systemd gives one process: the sockets at fds 3..,
LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (its own pid); plus
DROVER_WORKER_ID (0..N-1), DROVER_GENERATION and a NOTIFY_SOCKET for READY=1
and STATUS=. drover tells systemd READY=1 once every worker is ready.

A worker that exits is restarted in its slot after a backoff; a slot that
keeps failing is a crash loop, and drover exits 1. SIGTERM or SIGINT drains
the workers (the stop signal, then SIGKILL after --stop-timeout) and exits 0.

SIGHUP or drover reload replaces the workers with the program now on disk, a
batch at a time, each new worker ready before an old one drains; if a new
worker fails, the old version keeps serving and the reload fails.

Every duration must be above 0 (with --min-uptime 1ns, any worker that was
ready restarts at once), and --ready-timeout, --stop-timeout, --backoff-min
and --backoff-max at most 24h; --max-failures at least 1.`,
		// COMMAND's own flags are never drover's, with or without "--".
		Annotations: map[string]string{annotationCommandAt: "0"},
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(runCommand(o, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	// Flags after COMMAND are COMMAND's, as before cobra, also for
	// completion (which does not go through normalizeArgs).
	c.Flags().SetInterspersed(false)
	return c
}

// runCommand is drover run with its flags in o and the worker command in
// args.
func runCommand(o *runOptions, args []string, stdout, stderr io.Writer) int {
	// A reader that went away (drover run | head) makes writes fail with
	// EPIPE instead of killing drover and its workers with SIGPIPE; Go
	// kills a program that writes to a broken stdout or stderr unless it
	// asks for SIGPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// drover's own log never blocks drover (journal.Async, journal.Hook).
	logOut := journal.NewAsync(stderr)
	defer logOut.Close()
	log := logrus.New()
	log.Out = logOut
	level, err := logrus.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(logOut, "drover: --log-level %q: want debug, info, warn or error\n", o.logLevel)
		return exitUsage
	}
	log.SetLevel(level)
	useJournal := journal.StderrIsJournal()
	switch o.logFormat {
	case "text":
		if useJournal {
			// Native entries: priorities and fields (WORKER_ID, ...) that
			// journalctl can filter on.
			hook := journal.NewHook(stderr)
			defer hook.Close()
			log.AddHook(hook)
			log.SetOutput(io.Discard)
		}
		log.Formatter = &logrus.TextFormatter{FullTimestamp: true}
	case "json":
		log.Formatter = &logrus.JSONFormatter{}
	default:
		fmt.Fprintf(logOut, "drover: --log-format %q: want text or json\n", o.logFormat)
		return exitUsage
	}

	cfg, err := o.config(args)
	if err != nil {
		fmt.Fprintf(logOut, "drover: %v\n", err)
		return exitUsage
	}
	cfg.Log = log
	cfg.Journal = useJournal
	cfg.LogIdentifier = o.logIdent
	cfg.NotifySocket = os.Getenv("NOTIFY_SOCKET")
	if cfg.WatchdogInterval, err = daemon.SdWatchdogEnabled(false); err != nil {
		fmt.Fprintf(logOut, "drover: %v\n", err)
		return exitUsage
	}
	cfg.TestHooks = os.Getenv("DROVER_TEST_HOOKS")
	cfg.Version = version
	cfg.Handover = supervisor.HandoverFromEnv()
	cfg.RuntimeDir = runtimeDir()
	cfg.ControlSocket = controlPath(o.control)

	sup, err := supervisor.New(cfg)
	if err != nil {
		fmt.Fprintf(logOut, "drover: %v\n", err)
		// systemctl status shows STATUS= even after systemd scheduled a
		// restart, when it no longer shows the log.
		daemon.SdNotify(false, "STATUS=failed: "+err.Error())
		if errors.Is(err, supervisor.ErrUsage) {
			return exitConfig
		}
		return 1
	}
	if err := sup.Run(context.Background()); err != nil {
		fmt.Fprintf(logOut, "drover: %v\n", err)
		return 1
	}
	return 0
}

func (o *runOptions) config(command []string) (supervisor.Config, error) {
	if len(command) == 0 {
		return supervisor.Config{}, errors.New("no worker command: use drover run [flags] -- COMMAND [ARGS...]")
	}
	workers, err := supervisor.ParseWorkers(o.workers)
	if err != nil {
		return supervisor.Config{}, err
	}
	ready, err := supervisor.ParseReadiness(o.ready)
	if err != nil {
		return supervisor.Config{}, err
	}
	sig, err := supervisor.ParseSignal(o.stopSignal)
	if err != nil {
		return supervisor.Config{}, fmt.Errorf("--stop-signal: %w", err)
	}
	if err := o.checkLimits(); err != nil {
		return supervisor.Config{}, err
	}
	batch, err := supervisor.ParseBatch(o.reloadBatch)
	if err != nil {
		return supervisor.Config{}, err
	}
	cfg := supervisor.Config{
		ReloadBatch:   batch,
		Command:       command,
		Workers:       workers,
		Listen:        o.listen,
		Ready:         ready,
		ReadyTimeout:  o.readyTimeout,
		StopSignal:    sig,
		StopTimeout:   o.stopTimeout,
		BackoffMin:    o.backoffMin,
		BackoffMax:    o.backoffMax,
		MinUptime:     o.minUptime,
		MaxFailures:   o.maxFailures,
		FailureWindow: o.window,
		Node:          o.node,
	}
	o.metrics.apply(&cfg)
	return cfg, o.health.apply(&cfg)
}

// maxFlagDuration caps the timeouts and backoffs: a day is far beyond any
// sane wait, and the timeouts, plus drover's margin, are what it asks
// systemd to wait (EXTEND_TIMEOUT_USEC), which it caps at a day too.
const maxFlagDuration = 24 * time.Hour

// checkLimits refuses values that supervisor.Config would read as "the
// default" (0) or that make no sense (negative, absurdly long), rather than
// silently running with something else than what was asked for.
func (o *runOptions) checkLimits() error {
	if o.maxFailures < 1 {
		return fmt.Errorf("--max-failures %d: want at least 1", o.maxFailures)
	}
	for _, f := range []struct {
		name   string
		d      time.Duration
		capped bool
	}{
		{"ready-timeout", o.readyTimeout, true},
		{"stop-timeout", o.stopTimeout, true},
		{"backoff-min", o.backoffMin, true},
		{"backoff-max", o.backoffMax, true},
		{"min-uptime", o.minUptime, false},
		{"failure-window", o.window, false},
	} {
		switch {
		case f.d <= 0:
			return fmt.Errorf("--%s %v: want a positive duration", f.name, f.d)
		case f.capped && f.d > maxFlagDuration:
			return fmt.Errorf("--%s %v: want at most %v", f.name, f.d, maxFlagDuration)
		}
	}
	return nil
}

// runtimeDir is the first directory of systemd's RuntimeDirectory=, or "".
func runtimeDir() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	return dir
}

// controlPath is --control, else the control socket in RuntimeDirectory=;
// ExecReload= runs with the service's environment, so drover reload finds
// the same path as drover run.
func controlPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if dir := runtimeDir(); dir != "" {
		return filepath.Join(dir, "control.sock")
	}
	return ""
}
