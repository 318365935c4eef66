package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// startTimeout bounds a target's first start, Node included, on a loaded
// machine.
const startTimeout = 30 * time.Second

func startTarget(o *options, sp *spawner, name string, droverFlags []string) (target, error) {
	if name == "direct" {
		return startDirect(o, sp)
	}
	return startDrover(o, sp, droverFlags)
}

// runTrials kills one worker of each target in turn, drover, direct,
// drover, ..., so that a noisy machine's drift is shared, and prints the
// crash-to-serving times side by side.
func runTrials(ctx context.Context, o *options) error {
	sp := newSpawner()
	var targets []target
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	droverFlags := append(slices.Clone(trialDroverFlags), o.droverFlags...)
	answered := map[target]map[int]bool{}
	for _, name := range o.targets {
		t, err := startTarget(o, sp, name, droverFlags)
		if err != nil {
			return err
		}
		targets = append(targets, t)
		answered[t] = map[int]bool{}
	}
	for _, t := range targets {
		if _, err := waitServing(ctx, t, o.workers, answered[t], startTimeout); err != nil {
			return err
		}
	}
	fmt.Printf("crash-to-serving: SIGKILL of the oldest of %d workers, until a new pid answers (a new connection every %v)\n", o.workers, o.interval)
	fmt.Printf("app: %s · drover run %s · %d trials per target, %v apart\n\n", strings.Join(o.app, " "), strings.Join(droverFlags, " "), o.trials, o.settle)
	crashes := map[target][]crash{}
	for i := range o.trials {
		for _, t := range targets {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(o.settle):
			}
			workers, err := waitServing(ctx, t, o.workers, answered[t], startTimeout)
			if err != nil {
				return err
			}
			c, err := killAndProbe(ctx, t, workers, o.interval)
			if err != nil {
				return err
			}
			delete(answered[t], c.victim)
			answered[t][c.newPid] = true
			crashes[t] = append(crashes[t], c)
			fmt.Fprintf(os.Stderr, "trial %d %s: killed %d, %d answered after %s ms, %d failed probes\n", i+1, t.name(), c.victim, c.newPid, ms(c.took), c.failed)
		}
	}
	// drover logs "worker ready" when its probe of /proc sees it, which
	// may be after the first answer.
	time.Sleep(300 * time.Millisecond)
	printTrials(targets, crashes)
	printBreakdown(targets, crashes)
	return nil
}

func printTrials(targets []target, crashes map[target][]crash) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmedian ms\tmin\tmax\tfailed probes\tper trial (ms)")
	medians := map[string]time.Duration{}
	for _, t := range targets {
		var took []time.Duration
		failed := 0
		for _, c := range crashes[t] {
			took = append(took, c.took)
			failed += c.failed
		}
		per := make([]string, len(took))
		for i, d := range took {
			per[i] = ms(d)
		}
		m := median(took)
		medians[t.name()] = m
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.name(), ms(m), ms(slices.Min(took)), ms(slices.Max(took)), failed, strings.Join(per, " "))
	}
	tw.Flush()
	dr, okR := medians["drover"]
	di, okI := medians["direct"]
	if okR && okI && di > 0 {
		fmt.Printf("\ndrover − direct: %+.1f ms at the median (drover %.2f× direct)\n", float64(dr-di)/float64(time.Millisecond), float64(dr)/float64(di))
	}
}

// steps is one crash split by the target's events. A step the target
// does not report (direct has no backoff and no readiness) is -1.
type steps [6]time.Duration

var stepNames = steps{}.names()

func (steps) names() []string {
	return []string{
		"kill → exit reaped (\"worker failed\")",
		"exit reaped → new process started",
		"  of which drover's backoff (\"restarting worker\" in=)",
		"new process started → first answer",
		"new process started → drover saw it ready (took=)",
		"kill → first answer",
	}
}

// split finds c's events: the exit reaped, the replacement forked (and past
// the trampoline's own exec), and for drover the backoff it asked for and
// when it saw the replacement ready.
func split(t target, c crash) (steps, bool) {
	tl := t.events()
	exit, ok1 := tl.first(c.at, func(e event) bool { return e.what == "worker failed" && e.pid == c.victim })
	started, ok2 := tl.first(c.at, func(e event) bool { return e.what == "worker started" && e.pid == c.newPid })
	if !ok1 || !ok2 {
		return steps{}, false
	}
	s := steps{exit.at.Sub(c.at), started.at.Sub(exit.at), -1, c.at.Add(c.took).Sub(started.at), -1, c.took}
	if r, ok := tl.first(exit.at, func(e event) bool { return e.what == "restarting worker" }); ok {
		s[2] = r.in
	}
	if r, ok := tl.first(c.at, func(e event) bool { return e.what == "worker ready" && e.pid == c.newPid }); ok {
		s[4] = r.took
	}
	return s, true
}

func (s steps) String() string {
	f := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return ms(d)
	}
	return fmt.Sprintf("reaped +%s, started +%s (backoff %s), answered +%s, ready took %s", f(s[0]), f(s[1]), f(s[2]), f(s[3]), f(s[4]))
}

// printBreakdown prints the median of each step over a target's crashes.
func printBreakdown(targets []target, crashes map[target][]crash) {
	cols := make([][]string, len(targets))
	for i, t := range targets {
		per := make([][]time.Duration, len(stepNames))
		for _, c := range crashes[t] {
			s, ok := split(t, c)
			if !ok {
				continue
			}
			for j, d := range s {
				if d >= 0 {
					per[j] = append(per[j], d)
				}
			}
		}
		for _, p := range per {
			cols[i] = append(cols[i], medianOrDash(p))
		}
	}
	fmt.Println("\nwhere the time goes (median ms of each step; events stamped as the bench saw them):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "step")
	for _, t := range targets {
		fmt.Fprint(tw, "\t", t.name())
	}
	fmt.Fprintln(tw)
	for s, name := range stepNames {
		fmt.Fprint(tw, name)
		for i := range targets {
			fmt.Fprint(tw, "\t", cols[i][s])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Println("\nper trial (ms; each step from the end of the one before):")
	for i := range crashes[targets[0]] {
		for _, t := range targets {
			if i >= len(crashes[t]) {
				continue
			}
			if s, ok := split(t, crashes[t][i]); ok {
				fmt.Printf("  %d %s: %s\n", i+1, t.name(), s)
			}
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianOrDash(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return ms(median(ds))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}
