// Command crashbench measures crash-to-serving time: how long after one
// worker is killed with SIGKILL a replacement answers HTTP. It measures
// drover and, in the same run and interleaved with it, a minimal direct
// supervisor (this program: one shared socket, N children, re-forked the
// moment one exits), which is the limit line drover is compared against.
//
//	crashbench [--trials 7] [--app 'node testdata/node-worker/server.js']
//	crashbench --crashes 1000 --app bin/example-worker
//
// With --crashes N it measures something else: it kills drover's workers N
// times in a row, each kill waiting for the previous replacement to answer,
// and samples drover's RSS, open fds, threads and zombie children every
// --sample-every crashes, so one can read whether they stay flat.
//
// Both targets get their socket the way systemd gives it: a listening
// socket on 127.0.0.1:0 at fd 3, LISTEN_FDS=1 and LISTEN_PID set to the
// pid of the process that receives it. The pid is only known after fork,
// so children start as this binary in a hidden mode (trampolineArg) that
// sets LISTEN_PID to its own pid and execs the real program, keeping the
// pid, as drover's own trampoline does for its workers.
//
// The app must say which process answered: an X-Pid header or "pid=N" in
// the body (testdata/node-worker and testdata/example-worker do the
// latter).
//
// Every process it starts runs in its own process group with
// PR_SET_PDEATHSIG, and is killed on the way out, Ctrl-C included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	drover      string
	droverFlags []string
	appPath     string   // app[0], resolved
	app         []string // argv of the worker command
	workers     int
	trials      int
	settle      time.Duration
	interval    time.Duration
	crashes     int
	sampleEvery int
	droverLog   string
	targets     []string
}

// trialDroverFlags only lift the crash-loop limit: the trials kill up to
// one worker every few seconds, which the default (5 failures of a slot in
// a minute) would end with --trials 10. Timing is unaffected.
var trialDroverFlags = []string{"--max-failures", "1000"}

// crashDroverFlags let 1000 kills in a row run at the app's pace: with the
// defaults every kill comes before --min-uptime 5s, so the backoff would
// double from 100ms to 15s, and the fifth failure of a slot within a
// minute is a crash loop.
var crashDroverFlags = []string{"--backoff-min", "1ms", "--min-uptime", "1ms", "--max-failures", "1000000"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == trampolineArg {
		os.Exit(trampoline(os.Args[2:]))
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "crashbench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.crashes > 0 {
		err = runCrashes(ctx, o)
	} else {
		err = runTrials(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashbench: %v\n", err)
		if ctx.Err() != nil {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("crashbench", flag.ContinueOnError)
	fs.StringVar(&o.drover, "drover", "bin/drover", "the drover binary")
	droverFlags := fs.String("drover-flags", "", "extra flags for drover run, after the bench's own (see -h); e.g. '--backoff-min 1ms'")
	app := fs.String("app", "node testdata/node-worker/server.js", "the worker command, split on spaces; it must answer with X-Pid or pid=N in the body")
	fs.IntVar(&o.workers, "workers", 2, "workers per target")
	fs.IntVar(&o.trials, "trials", 7, "kills per target")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "pause before each kill")
	fs.DurationVar(&o.interval, "interval", 2*time.Millisecond, "a new probe connection this often after a kill")
	fs.IntVar(&o.crashes, "crashes", 0, "instead of trials: kill drover's workers this many times in a row and sample drover's footprint")
	fs.IntVar(&o.sampleEvery, "sample-every", 100, "with --crashes: sample drover every this many crashes")
	fs.StringVar(&o.droverLog, "drover-log", "", "write drover's output (JSON log) to this file")
	targets := fs.String("targets", "drover,direct", "which targets, in trial order: drover, direct")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: crashbench [flags]\n\ndrover runs with %s (trials) or %s (--crashes), then --drover-flags.\n\n",
			strings.Join(trialDroverFlags, " "), strings.Join(crashDroverFlags, " "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.droverFlags = strings.Fields(*droverFlags)
	o.targets = strings.Split(*targets, ",")
	for _, t := range o.targets {
		if t != "drover" && t != "direct" {
			return nil, fmt.Errorf("--targets: unknown target %q (want drover, direct)", t)
		}
	}
	switch {
	case o.workers < 2:
		return nil, errors.New("--workers: want at least 2 (one survives each kill)")
	case o.trials < 1 || o.interval <= 0 || o.sampleEvery < 1:
		return nil, errors.New("--trials, --interval and --sample-every must be positive")
	}
	if o.app = strings.Fields(*app); len(o.app) == 0 {
		return nil, errors.New("--app: empty command")
	}
	// The trampoline execs a path: resolve the command here, where an
	// error can still be reported as such.
	var err error
	if o.appPath, err = exec.LookPath(o.app[0]); err != nil {
		return nil, fmt.Errorf("--app: %w", err)
	}
	return o, nil
}
