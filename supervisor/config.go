package supervisor

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/sockets"
)

// MaxWorkers bounds --workers: far above any real core count, low enough
// that a typo (--workers 10000) is refused instead of forking a storm.
const MaxWorkers = 1024

// Config is everything Run needs. The zero value of a field means its
// default (see withDefaults) unless said otherwise.
type Config struct {
	// Command is the worker program and its arguments; Command[0] is looked
	// up in PATH once, when the supervisor is created.
	Command []string
	// Workers is the number of worker slots; 0 means one per usable CPU.
	Workers int
	// Listen is used only when systemd passed no sockets.
	Listen []sockets.ListenSpec
	// Ready decides when a starting worker counts as ready.
	Ready Readiness
	// ReadyTimeout: a worker not ready by then is killed and counts as a
	// failed start.
	ReadyTimeout time.Duration
	// StopSignal asks a worker to drain and exit; StopTimeout later it gets
	// SIGKILL.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// A worker that fails after being ready for MinUptime is restarted at
	// once. Quicker failures are consecutive: the slot waits BackoffMin
	// before its restart, doubling with each, up to BackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	MinUptime  time.Duration
	// MaxFailures failures of one slot within FailureWindow is a crash
	// loop: drover stops and exits non-zero so systemd's Restart= and start
	// limits decide what happens next.
	MaxFailures   int
	FailureWindow time.Duration

	// Health (health.go). MaxMemory > 0 recycles a worker whose memory
	// (its cgroup's, or its process tree's RSS) is over it, sampled every
	// MemoryInterval. MaxLifetime > 0 recycles a worker that long after it
	// was ready, ±10%. WorkerWatchdog > 0 gives workers WATCHDOG_USEC: one
	// that stops pinging is hung and gets HangSignal, then SIGKILL after
	// HangGrace. LivenessInterval is how often a ready worker is checked
	// to still wait on its sockets.
	MaxMemory        int64
	MemoryInterval   time.Duration
	MaxLifetime      time.Duration
	WorkerWatchdog   time.Duration
	HangSignal       syscall.Signal
	HangGrace        time.Duration
	LivenessInterval time.Duration

	// MetricsSocket names the socket systemd passes for drover's own
	// Prometheus metrics (FileDescriptorName=); it is kept from the
	// workers. MetricsListen is where to serve them when not
	// socket-activated ("" and nil: no metrics endpoint).
	MetricsSocket string
	MetricsListen *sockets.ListenSpec
	// Version is drover's, for drover_build_info and drover status.
	Version string
	// Executable is the binary drover upgrade executes; default drover's
	// own path at start.
	Executable string
	// Handover is the state an upgrading drover handed over
	// (HandoverFromEnv): New adopts its sockets and Run its workers.
	Handover *os.File

	// ReloadBatch is how many new workers start at once during a reload.
	ReloadBatch Batch
	// ControlSocket is where `drover reload` finds this drover ("": none).
	ControlSocket string
	// RuntimeDir is where drover keeps its private files (pinned
	// executables); "" means the system's temp directory.
	RuntimeDir string

	// Node loads drover's preload into Node workers (package nodejs,
	// README "Node"): listen() on an inherited socket's port serves on it,
	// process.send('ready') counts as READY=1, the app drains on the stop
	// signal, and its event loop sends the watchdog's heartbeat.
	Node bool

	// Journal sends worker output to journald (drover's stderr is the
	// journal stream); otherwise it goes to drover's stdout and stderr,
	// prefixed with the worker's slot and pid.
	Journal bool
	// LogIdentifier is the SYSLOG_IDENTIFIER of worker output; default the
	// command's base name.
	LogIdentifier string

	// NotifySocket is systemd's NOTIFY_SOCKET ("" outside systemd: all
	// notifications are then no-ops), read once by the caller.
	NotifySocket string
	// WatchdogInterval is systemd's WATCHDOG_USEC (0: no watchdog).
	WatchdogInterval time.Duration
	// Trampoline is the binary that runs ExecWorker when called with
	// TrampolineArg; default /proc/self/exe.
	Trampoline string
	// Environ is the environment workers inherit (before drover removes
	// what belongs to it and adds theirs); nil means os.Environ().
	Environ []string
	// TestHooks enables test-only behaviour (DROVER_TEST_HOOKS):
	// "stall-on-sigusr2" makes SIGUSR2 block the event loop forever, so the
	// lab can prove that systemd's watchdog catches a stuck loop.
	TestHooks string

	Log logrus.FieldLogger
}

func (c Config) withDefaults() Config {
	if c.Ready.Mode == "" {
		c.Ready.Mode = ReadyListen
	}
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDuration(&c.ReadyTimeout, 30*time.Second)
	setDuration(&c.StopTimeout, 30*time.Second)
	setDuration(&c.BackoffMin, 100*time.Millisecond)
	setDuration(&c.BackoffMax, 15*time.Second)
	setDuration(&c.MinUptime, time.Second)
	setDuration(&c.FailureWindow, time.Minute)
	setDuration(&c.MemoryInterval, time.Second)
	setDuration(&c.HangGrace, 10*time.Second)
	setDuration(&c.LivenessInterval, 5*time.Second)
	if c.HangSignal == 0 {
		c.HangSignal = syscall.SIGABRT
	}
	if c.ReloadBatch == (Batch{}) {
		c.ReloadBatch = Batch{Count: 1}
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 5
	}
	if c.StopSignal == 0 {
		c.StopSignal = syscall.SIGTERM
	}
	if c.LogIdentifier == "" && len(c.Command) > 0 {
		c.LogIdentifier = filepath.Base(c.Command[0])
	}
	if c.Trampoline == "" {
		c.Trampoline = "/proc/self/exe"
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = nopWriter{}
		c.Log = l
	}
	return c
}

// addSaturated is d plus a margin (not negative), or the largest duration
// where the sum would overflow: drover adds margins to the timeouts it
// tells systemd, and a library user may pass any duration.
func addSaturated(d, margin time.Duration) time.Duration {
	if d > math.MaxInt64-margin {
		return math.MaxInt64
	}
	return d + margin
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func (c Config) validate() error {
	switch {
	case len(c.Command) == 0 || c.Command[0] == "":
		return usage(fmt.Errorf("no worker command: use drover run [flags] -- COMMAND [ARGS...]"))
	case c.Workers < 0 || c.Workers > MaxWorkers:
		return usage(fmt.Errorf("--workers %d: want auto or 1..%d", c.Workers, MaxWorkers))
	case c.ReadyTimeout < 0 || c.StopTimeout < 0 || c.BackoffMin < 0 || c.MinUptime < 0 || c.FailureWindow < 0:
		return usage(fmt.Errorf("durations must not be negative"))
	case c.BackoffMax < c.BackoffMin:
		return usage(fmt.Errorf("--backoff-max %v is below --backoff-min %v", c.BackoffMax, c.BackoffMin))
	case c.MaxFailures < 1:
		return usage(fmt.Errorf("--max-failures %d: want at least 1", c.MaxFailures))
	case c.MaxMemory < 0 || c.MaxLifetime < 0 || c.WorkerWatchdog < 0 || c.MemoryInterval < 0 || c.HangGrace < 0:
		return usage(fmt.Errorf("health limits must not be negative"))
	case c.Ready.Mode == ReadyDelay && c.Ready.Delay >= c.ReadyTimeout:
		return usage(fmt.Errorf("--ready delay=%v is not below --ready-timeout %v: no worker could ever be ready", c.Ready.Delay, c.ReadyTimeout))
	}
	return nil
}

// ReadyMode names how readiness is decided.
type ReadyMode string

const (
	// ReadyListen: the worker waits for connections on every socket it was
	// given, as seen from /proc (an epoll set or a blocked accept).
	ReadyListen ReadyMode = "listen"
	// ReadyNotify: the worker sends READY=1 to the NOTIFY_SOCKET drover gave
	// it, as it would to systemd.
	ReadyNotify ReadyMode = "notify"
	// ReadyDelay: the worker counts as ready a fixed time after it started.
	ReadyDelay ReadyMode = "delay"
)

// Readiness is a parsed --ready value.
type Readiness struct {
	Mode  ReadyMode
	Delay time.Duration // for ReadyDelay
}

func (r Readiness) String() string {
	if r.Mode == ReadyDelay {
		return "delay=" + r.Delay.String()
	}
	return string(r.Mode)
}

// ParseReadiness parses --ready: listen, notify or delay=DURATION.
func ParseReadiness(s string) (Readiness, error) {
	switch {
	case s == string(ReadyListen), s == string(ReadyNotify):
		return Readiness{Mode: ReadyMode(s)}, nil
	case strings.HasPrefix(s, "delay="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "delay="))
		if err != nil || d < 0 {
			return Readiness{}, usage(fmt.Errorf("--ready %q: want delay=DURATION, e.g. delay=2s", s))
		}
		return Readiness{Mode: ReadyDelay, Delay: d}, nil
	}
	return Readiness{}, usage(fmt.Errorf("--ready %q: want listen, notify or delay=DURATION", s))
}

// ParseWorkers parses --workers: auto (0) or a count in 1..MaxWorkers.
func ParseWorkers(s string) (int, error) {
	if s == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxWorkers {
		return 0, usage(fmt.Errorf("--workers %q: want auto or a number from 1 to %d", s, MaxWorkers))
	}
	return n, nil
}

// ParseSignal parses a signal name (TERM, SIGTERM, sigterm) or number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, usage(fmt.Errorf("signal %q: number out of range 1..64", s))
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, usage(fmt.Errorf("signal %q: unknown name (try TERM, INT, QUIT, HUP, USR1, USR2, WINCH)", s))
}

// ParseSize parses --max-memory: bytes, or a number with K, M, G or T
// (powers of 1024, an optional trailing B or iB): 512M, 1.5G, 1048576.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := 1.0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = float64(int64(1) << (10 * (i + 1)))
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*mult >= 1<<62 {
		return 0, usage(fmt.Errorf("--max-memory %q: want a size such as 512M or 1.5G", s))
	}
	return int64(f * mult), nil
}

// FormatSize writes n bytes the way ParseSize reads them: 530M, 1.5G.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	digits := strconv.FormatFloat(f, 'f', 1, 64)
	if f >= 10 {
		digits = strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strings.TrimSuffix(digits, ".0") + string("KMGT"[i])
}
