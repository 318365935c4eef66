package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/cmd/drover/top"
	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/output"
)

// exitNotRunning is what systemctl status returns for a unit that is not
// running; drover status follows it.
const exitNotRunning = 3

func statusCmd() *cobra.Command {
	fs, asJSON, controlFlag := statusFlags()
	c := &cobra.Command{
		Use:   "status [--json] [--control PATH] [UNIT]",
		Short: "show a unit run by drover and its workers",
		Long: `Shows one screen: the unit as systemd sees it (state, main pid, drover's
status line, systemd's restarts, active since), read over D-Bus, and a table
of workers from the running drover: slot, pid, generation, state (starting,
ready, draining, backing-off), uptime, restarts, CPU%, RSS and the worker's
own STATUS= line. What came from workers (STATUS= lines, the command) is
shown with control characters escaped (\x1b), so it cannot act on the
terminal; --json keeps it as it is.

With UNIT (myapp or myapp.service), drover's control socket is found through
the unit's RuntimeDirectory=. Without, from $RUNTIME_DIRECTORY (as in
ExecReload=) or --control. Reading the unit needs no privilege; reading the
workers needs root or the service's user.

--json prints {"unit": ..., "drover": ...} for scripts: the field names are
stable (fields may be added, never renamed). Exits 3 when the unit is not
running, 1 on other errors.`,
		ValidArgsFunction: completeUnit,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(statusCommand(*asJSON, *controlFlag, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

func statusFlags() (*pflag.FlagSet, *bool, *string) {
	fs := pflag.NewFlagSet("drover status", pflag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	controlFlag := fs.String("control", "", "drover's control socket, instead of finding it through UNIT")
	return fs, asJSON, controlFlag
}

// statusReport is drover status --json.
// answerTimeout bounds a status or scale request: both are answered at
// once by a drover that is not stuck.
const answerTimeout = 10 * time.Second

type statusReport struct {
	Unit   *unitInfo       `json:"unit"`
	Drover *control.Status `json:"drover"`
}

func statusCommand(asJSON bool, controlFlag string, pos []string, stdout, stderr io.Writer) int {
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "drover status: one UNIT at most, got %q\n", pos)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var report statusReport
	path := controlPath(controlFlag)
	if len(pos) == 1 {
		u, sock, err := unitControl(ctx, pos[0])
		if err != nil && u.LoadState == "" {
			fmt.Fprintf(stderr, "drover status: %v\n", err)
			return 1
		}
		report.Unit = &u
		if err != nil && errors.Is(err, errNotDrover) {
			fmt.Fprintf(stderr, "drover status: %v\n", err)
			printReport(stdout, report, asJSON)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover status: %v\n", err)
			return 1
		}
		if controlFlag == "" {
			path = sock
		}
		if !running(u) {
			printReport(stdout, report, asJSON)
			return exitNotRunning
		}
	}
	if path == "" {
		fmt.Fprintln(stderr, "drover status: which drover? Name a UNIT, give --control PATH, or run it where $RUNTIME_DIRECTORY is set")
		return exitUsage
	}
	st, err := statusAt(path)
	if err != nil {
		fmt.Fprintf(stderr, "drover status: %v\n", explainControlError(err))
		if report.Unit != nil {
			printReport(stdout, report, asJSON)
		}
		return 1
	}
	report.Drover = st
	printReport(stdout, report, asJSON)
	return 0
}

// statusAt asks the drover at the control socket path for its status.
func statusAt(path string) (*control.Status, error) {
	resp, err := control.Call(path, control.Request{Command: "status"}, answerTimeout)
	if err != nil {
		return nil, err
	}
	if !resp.OK || resp.Status == nil {
		return nil, errors.New(resp.Error)
	}
	return resp.Status, nil
}

func running(u unitInfo) bool {
	switch u.ActiveState {
	case "active", "reloading", "activating", "deactivating":
		return true
	}
	return false
}

// unitControl reads a unit and finds its drover control socket.
func unitControl(ctx context.Context, name string) (unitInfo, string, error) {
	bus, err := connectSystemd(ctx)
	if err != nil {
		return unitInfo{}, "", err
	}
	defer bus.close()
	u, err := bus.unit(ctx, name)
	if err != nil {
		return u, "", err
	}
	sock, err := controlSocketOf(u)
	return u, sock, err
}

// explainControlError turns socket errors into what to do about them.
func explainControlError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, os.ErrPermission), strings.Contains(err.Error(), "permission denied"):
		return fmt.Errorf("%w: run as root or as the service's user", err)
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: is drover running there (drover run with RuntimeDirectory= or --control)?", err)
	}
	return err
}

// printReport prints r as JSON, or as text for a terminal. Status lines,
// commands and socket paths come from the workers and the unit (whose
// StatusText carries drover's status line, with a worker's failure in it),
// so text output shows their control characters escaped (output.Sanitize):
// a worker must not be able to clear the operator's screen or retitle the
// terminal. JSON escapes them itself.
func printReport(w io.Writer, r statusReport, asJSON bool) {
	clean := output.Sanitize
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return
	}
	if u := r.Unit; u != nil {
		fmt.Fprintf(w, "%s  %s (%s)", clean(u.Name), clean(u.ActiveState), clean(u.SubState))
		if !u.ActiveSince.IsZero() && running(*u) {
			fmt.Fprintf(w, " since %s (%s ago)", u.ActiveSince.Format(time.DateTime), time.Since(u.ActiveSince).Round(time.Second))
		}
		fmt.Fprintf(w, "\n  main pid %d · %d restarts by systemd\n", u.MainPID, u.NRestarts)
		if u.StatusText != "" {
			fmt.Fprintf(w, "  status: %s\n", clean(u.StatusText))
		}
	}
	d := r.Drover
	if d == nil {
		return
	}
	if r.Unit == nil {
		fmt.Fprintf(w, "drover pid %d: %s\n", d.Pid, clean(d.StatusText))
	}
	if d.Version != "" {
		fmt.Fprintf(w, "  drover %s", clean(d.Version))
		if !d.Upgraded.IsZero() {
			fmt.Fprintf(w, " · upgraded in place from %s at %s (%s ago)", clean(d.UpgradedFrom), d.Upgraded.Format(time.DateTime), time.Since(d.Upgraded).Round(time.Second))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  sockets: %s · command: %s\n\n", clean(strings.Join(d.Sockets, " ")), clean(strings.Join(d.Command, " ")))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tPID\tGEN\tSTATE\tUPTIME\tRESTARTS\tCPU%\tRSS\tRECYCLED\tSTATUS")
	for _, p := range d.Processes {
		pid, gen, up := "-", "-", "-"
		if p.Pid != 0 {
			pid, gen = fmt.Sprint(p.Pid), fmt.Sprint(p.Generation)
			up = time.Since(p.Started).Round(time.Second).String()
		}
		recycled := fmt.Sprint(p.Recycles)
		if p.LastRecycle != "" {
			recycled += " (" + clean(p.LastRecycle) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%.1f\t%s\t%s\t%s\n", p.Slot, pid, gen, clean(p.State), up, p.Restarts, p.CPUPercent, top.HumanBytes(p.RSSBytes), recycled, clean(p.Status))
	}
	tw.Flush()
}

func scaleCmd() *cobra.Command {
	fs, controlFlag := scaleFlags()
	c := &cobra.Command{
		Use:   "scale [--control PATH] UNIT N|+N|-N",
		Short: "change the number of workers at runtime",
		Long: `Sets the number of workers of a running drover to N, or adds or removes
some. New workers are gated on readiness like any other; removed ones drain
(the highest slots go first). The count is kept across reloads but not
across a restart of the service: to make it permanent, set --workers in the
unit (systemctl edit UNIT). Refused while a start or reload is under way.
With --control, UNIT may be given as "-".`,
		// drover scale myapp -2 removes two workers.
		Annotations:       map[string]string{annotationNegativeArgs: "true"},
		ValidArgsFunction: completeUnit,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(scaleCommand(*controlFlag, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

func scaleFlags() (*pflag.FlagSet, *string) {
	fs := pflag.NewFlagSet("drover scale", pflag.ContinueOnError)
	controlFlag := fs.String("control", "", "drover's control socket, instead of finding it through UNIT")
	return fs, controlFlag
}

func scaleCommand(controlFlag string, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "drover scale: want UNIT and a count: drover scale myapp 4 (or +1, -1)")
		return exitUsage
	}
	count := args[1]
	if _, _, err := control.ParseScale(count); err != nil {
		fmt.Fprintf(stderr, "drover scale: %v\n", err)
		return exitUsage
	}
	path := controlFlag
	if path == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u, sock, err := unitControl(ctx, args[0])
		if err == nil && !running(u) {
			err = fmt.Errorf("%s is not running (%s)", u.Name, u.ActiveState)
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover scale: %v\n", err)
			return 1
		}
		path = sock
	}
	resp, err := control.Call(path, control.Request{Command: "scale", Count: count}, answerTimeout)
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "drover scale: %v\n", explainControlError(err))
		return 1
	}
	fmt.Fprintf(stdout, "scaling to %d workers\n", resp.Workers)
	return 0
}
