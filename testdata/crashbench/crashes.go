package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// runCrashes kills drover's workers o.crashes times in a row, each kill
// after the previous replacement answered, and samples drover's footprint
// so one can read whether reaping leaves anything behind.
func runCrashes(ctx context.Context, o *options) error {
	sp := newSpawner()
	flags := append(slices.Clone(crashDroverFlags), o.droverFlags...)
	d, err := startDrover(o, sp, flags)
	if err != nil {
		return err
	}
	defer d.close()
	answered := map[int]bool{}
	workers, err := waitServing(ctx, d, o.workers, answered, startTimeout)
	if err != nil {
		return err
	}
	fmt.Printf("%d crashes in a row: SIGKILL of the oldest of %d workers, the next once a new pid answered\n", o.crashes, o.workers)
	fmt.Printf("app: %s · drover run %s\n\n", strings.Join(o.app, " "), strings.Join(flags, " "))
	// Fixed widths, not a tabwriter: each row is printed as it is sampled.
	const format = "%9s %9s %9s %4s %7s %15s %12s %18s %13s\n"
	fmt.Printf(format, "crashes", "elapsed s", "VmRSS KiB", "fds", "threads", "zombie children", "live workers", "median ms to serve", "failed probes")
	started := time.Now()
	row := func(label string, block []crash) error {
		fp, err := readFootprint(d.pid)
		if err != nil {
			return fmt.Errorf("sample drover: %w", err)
		}
		took, failed := "-", 0
		if len(block) > 0 {
			var ds []time.Duration
			for _, c := range block {
				ds = append(ds, c.took)
				failed += c.failed
			}
			took = ms(median(ds))
		}
		fmt.Printf(format, label, fmt.Sprintf("%.1f", time.Since(started).Seconds()), fmt.Sprint(fp.rssKiB), fmt.Sprint(fp.fds),
			fmt.Sprint(fp.threads), fmt.Sprint(fp.zombies), fmt.Sprint(fp.workers), took, fmt.Sprint(failed))
		return nil
	}
	if err := row("0", nil); err != nil {
		return err
	}
	var block []crash
	for i := 1; i <= o.crashes; i++ {
		c, err := killAndProbe(ctx, d, workers, o.interval)
		if err != nil {
			return fmt.Errorf("crash %d: %w", i, err)
		}
		delete(answered, c.victim)
		answered[c.newPid] = true
		block = append(block, c)
		if workers, err = waitServing(ctx, d, o.workers, answered, crashTimeout); err != nil {
			return fmt.Errorf("after crash %d: %w", i, err)
		}
		if i%o.sampleEvery == 0 || i == o.crashes {
			if err := row(fmt.Sprint(i), block); err != nil {
				return err
			}
			block = nil
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	if err := row("+1s idle", nil); err != nil {
		return err
	}
	printRestartDelays(d)
	return nil
}

// printRestartDelays says which backoff drover applied, so a growing one
// (kills inside --min-uptime) is not mistaken for slow reaping.
func printRestartDelays(d *droverTarget) {
	var in []time.Duration
	for _, e := range d.events().all("restarting worker") {
		in = append(in, e.in)
	}
	if len(in) == 0 {
		return
	}
	fmt.Printf("\ndrover's restart delays (\"restarting worker\" in=): %d restarts, min %v, median %v, max %v\n",
		len(in), slices.Min(in), median(in), slices.Max(in))
}
