package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor"
	"github.com/droverd/drover/supervisor/control"
)

func upgradeCmd() *cobra.Command {
	fs, o := upgradeFlags()
	c := &cobra.Command{
		Use:   "upgrade [--control PATH] [--all] [UNIT]",
		Short: "re-execute drover's new binary in place; the workers keep running",
		Long: `Asks a running drover to re-execute the drover binary now on disk at the
path it started from, in the same process: systemd's MainPID stays, every
worker keeps running untouched (its pid, its connections, its warm caches),
and the new drover adopts them with their counters and health timers. The
new binary is asked first whether it reads this drover's state; if it
cannot run, or does not, drover keeps running as it was and upgrade exits 1
with the reason.

drover upgrades only a steady state: while a start, reload, recycle,
drain or restart backoff is under way it refuses (exit 1; try again). With
--all, every active service that runs drover is upgraded in turn and each
result printed, as the packages do after installing a new drover (opt out
with DROVER_UPGRADE=no in /etc/default/drover). UNIT and --control find
drover as for drover status; it needs root or the service's user.`,
		ValidArgsFunction: completeUnit,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(upgradeCommand(o, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

type upgradeOptions struct {
	control string
	all     bool
	timeout time.Duration
}

func upgradeFlags() (*pflag.FlagSet, *upgradeOptions) {
	o := &upgradeOptions{}
	fs := pflag.NewFlagSet("drover upgrade", pflag.ContinueOnError)
	fs.StringVar(&o.control, "control", "", "drover's control socket, instead of finding it through UNIT")
	fs.BoolVar(&o.all, "all", false, "upgrade every active service that runs drover")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long the new drover may take to answer")
	return fs, o
}

func upgradeCommand(o *upgradeOptions, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 1:
		fmt.Fprintf(stderr, "drover upgrade: one UNIT at most, got %q\n", args)
		return exitUsage
	case o.all && (len(args) > 0 || o.control != ""):
		fmt.Fprintln(stderr, "drover upgrade: --all takes no UNIT and no --control")
		return exitUsage
	case o.all:
		return upgradeAll(o.timeout, stdout, stderr)
	}
	path := controlPath(o.control)
	if len(args) == 1 {
		ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
		defer cancel()
		_, sock, err := unitControl(ctx, args[0])
		if err != nil {
			fmt.Fprintf(stderr, "drover upgrade: %v\n", err)
			return 1
		}
		if o.control == "" {
			path = sock
		}
	}
	if path == "" {
		fmt.Fprintln(stderr, "drover upgrade: no control socket: give UNIT or --control PATH")
		return exitUsage
	}
	st, err := upgradeAt(path, o.timeout)
	if err != nil {
		fmt.Fprintf(stderr, "drover upgrade: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "upgraded drover %s -> %s in place: pid %d, %d workers kept\n", st.UpgradedFrom, st.Version, st.Pid, len(st.Processes))
	return 0
}

// upgradeAt upgrades the drover at the control socket path and returns
// its status once the new image answers.
func upgradeAt(path string, timeout time.Duration) (*control.Status, error) {
	before, err := statusAt(path)
	if err != nil {
		return nil, err
	}
	// A refusal, or an exec that failed, is answered. Otherwise the exec
	// closed the connection, and the new image answers status once it has
	// adopted the workers.
	if resp, err := control.Call(path, control.Request{Command: "upgrade"}, timeout); err == nil && !resp.OK {
		return nil, errors.New(resp.Error)
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := statusAt(path)
		if err == nil && st.Pid != before.Pid {
			return nil, fmt.Errorf("drover's pid changed (%d -> %d): the new binary failed and systemd restarted the service; see journalctl", before.Pid, st.Pid)
		}
		if err == nil && st.Upgraded.After(before.Upgraded) {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("it still runs the old image")
			}
			return nil, fmt.Errorf("no upgraded drover within %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// upgradeAll upgrades every active service that runs drover, found
// through systemd, and says on stderr how each went.
func upgradeAll(timeout time.Duration, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	bus, err := connectSystemd(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "drover upgrade --all: %v\n", err)
		return 1
	}
	names, err := bus.droverUnits(ctx, "")
	bus.close()
	if err != nil {
		fmt.Fprintf(stderr, "drover upgrade --all: %v\n", err)
		return 1
	}
	code := 0
	for _, name := range names {
		uctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
		u, sock, err := unitControl(uctx, name)
		cancel()
		if u.ActiveState != "active" && u.ActiveState != "reloading" {
			continue // not running: it starts with the new drover anyway
		}
		var st *control.Status
		if err == nil {
			st, err = upgradeAt(sock, timeout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover: %s: upgrade failed: %v\n", name, err)
			code = 1
			continue
		}
		fmt.Fprintf(stderr, "drover: %s: upgraded in place %s -> %s (pid %d, %d workers kept)\n", name, st.UpgradedFrom, st.Version, st.Pid, len(st.Processes))
	}
	return code
}

// upgradeCheckCmd is what a running drover asks a new binary before it
// execs it (supervisor.UpgradeCheck). Hidden: not for people.
func upgradeCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "upgrade-check",
		Short:  "print the version and the handover formats this binary reads",
		Hidden: true,
		RunE: func(c *cobra.Command, args []string) error {
			b, _ := json.Marshal(supervisor.UpgradeCheck{Version: version, HandoverFormats: supervisor.HandoverFormats})
			fmt.Fprintln(c.OutOrStdout(), string(b))
			return nil
		},
	}
}
