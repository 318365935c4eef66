package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor"
)

// healthOptions are drover run's health flags (README, "Health").
type healthOptions struct {
	maxMemory      string
	memoryInterval time.Duration
	maxLifetime    time.Duration
	watchdog       time.Duration
	hangSignal     string
	hangGrace      time.Duration
}

func (h *healthOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&h.maxMemory, "max-memory", "", "recycle a worker whose memory, with its descendants', is over `SIZE` (512M, 1.5G); off by default")
	fs.DurationVar(&h.memoryInterval, "memory-interval", time.Second, "how often --max-memory samples the workers")
	fs.DurationVar(&h.maxLifetime, "max-lifetime", 0, "recycle each worker this long after it was ready, ±10%; off by default")
	fs.DurationVar(&h.watchdog, "worker-watchdog", 0, "give workers WATCHDOG_USEC; one that stops sending WATCHDOG=1 is hung and killed; off by default")
	fs.StringVar(&h.hangSignal, "hang-signal", "ABRT", "signal for a hung worker (ABRT leaves a core and Go's goroutine stacks)")
	fs.DurationVar(&h.hangGrace, "hang-grace", 10*time.Second, "time a hung worker has after the hang signal, before SIGKILL")
}

// apply checks the health flags and puts them into cfg.
func (h *healthOptions) apply(cfg *supervisor.Config) error {
	if h.maxMemory != "" {
		size, err := supervisor.ParseSize(h.maxMemory)
		if err != nil {
			return err
		}
		cfg.MaxMemory = size
	}
	for _, f := range []struct {
		name string
		d    time.Duration
		zero bool // 0 means off
	}{
		{"memory-interval", h.memoryInterval, false},
		{"max-lifetime", h.maxLifetime, true},
		{"worker-watchdog", h.watchdog, true},
		{"hang-grace", h.hangGrace, false},
	} {
		if f.d < 0 || (f.d == 0 && !f.zero) {
			return fmt.Errorf("--%s %v: want a positive duration", f.name, f.d)
		}
	}
	if h.watchdog > 0 && h.watchdog < time.Millisecond {
		return fmt.Errorf("--worker-watchdog %v: want at least 1ms", h.watchdog)
	}
	sig, err := supervisor.ParseSignal(h.hangSignal)
	if err != nil {
		return fmt.Errorf("--hang-signal: %w", err)
	}
	cfg.MemoryInterval, cfg.MaxLifetime, cfg.WorkerWatchdog = h.memoryInterval, h.maxLifetime, h.watchdog
	cfg.HangSignal, cfg.HangGrace = sig, h.hangGrace
	return nil
}
