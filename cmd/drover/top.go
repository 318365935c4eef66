package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/cmd/drover/top"
	"github.com/droverd/drover/supervisor/control"
)

func topCmd() *cobra.Command {
	fs, controlFlag, interval := topFlags()
	c := &cobra.Command{
		Use:   "top [--control PATH] [--interval D] [UNIT]",
		Short: "a live screen of a unit run by drover: workers, CPU, reloads, logs",
		Long: `Shows a full screen, refreshed every second: the unit's state and drover's
status line (a reload's stage stands out while it runs), and per worker its
slot, pid, generation, state, uptime, CPU% with the last 30 samples, RSS,
restarts, recycles and its own STATUS= line; below, the workers' latest
log lines from the journal (with UNIT; a dev-mode drover writes them to its
own stdout). Keys: q quits, r reloads (after a y), + and - add or remove
a worker, as drover scale +1 and -1.

UNIT and --control find drover as for drover status. What came from workers
is shown with control characters escaped. Needs a terminal: on a pipe or a
file it exits 1 (use drover status there). Exits 3 when the unit is not
running, 1 on other errors.`,
		ValidArgsFunction: completeUnit,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(topCommand(*controlFlag, *interval, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

func topFlags() (*pflag.FlagSet, *string, *time.Duration) {
	fs := pflag.NewFlagSet("drover top", pflag.ContinueOnError)
	controlFlag := fs.String("control", "", "drover's control socket, instead of finding it through UNIT")
	interval := fs.Duration("interval", time.Second, "time between refreshes")
	return fs, controlFlag, interval
}

func topCommand(controlFlag string, interval time.Duration, pos []string, stdout, stderr io.Writer) int {
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "drover top: one UNIT at most, got %q\n", pos)
		return exitUsage
	}
	if interval <= 0 {
		fmt.Fprintf(stderr, "drover top: --interval %v: want a positive duration\n", interval)
		return exitUsage
	}
	src, code, err := newTopSource(pos, controlFlag)
	if err != nil {
		fmt.Fprintf(stderr, "drover top: %v\n", err)
		return code
	}
	out, _ := stdout.(*os.File)
	if out == nil {
		fmt.Fprintf(stderr, "drover top: %v\n", top.ErrNoTerminal)
		return 1
	}
	if err := top.Run(src, os.Stdin, out, top.Options{Interval: interval}); err != nil {
		fmt.Fprintf(stderr, "drover top: %v\n", err)
		return 1
	}
	return 0
}

// newTopSource finds drover as drover status does, and reads it once, so
// that a unit not run by drover, or a socket nobody serves, is one line
// of error before the screen is drawn rather than an error on it. The code
// is the exit code for the error.
func newTopSource(pos []string, controlFlag string) (*topSource, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	s := &topSource{control: controlPath(controlFlag)}
	if len(pos) == 1 {
		u, sock, err := unitControl(ctx, pos[0])
		if err != nil {
			return nil, 1, err
		}
		if !running(u) {
			return nil, exitNotRunning, fmt.Errorf("%s is not running (%s)", u.Name, u.ActiveState)
		}
		s.unit = u.Name
		if controlFlag == "" {
			s.control = sock
		}
	}
	if s.control == "" {
		return nil, exitUsage, errors.New("which drover? Name a UNIT, give --control PATH, or run it where $RUNTIME_DIRECTORY is set")
	}
	if _, err := s.Status(ctx); err != nil {
		return nil, 1, err
	}
	return s, 0, nil
}

// topSource is top.Source over drover's control socket and, given a unit,
// systemd's D-Bus and the journal.
type topSource struct {
	unit    string // "" for a drover found by --control or $RUNTIME_DIRECTORY
	control string

	mu     sync.Mutex
	slotOf map[string]string // worker pid -> slot, from the last status
}

func (s *topSource) Status(ctx context.Context) (top.Snapshot, error) {
	snap := top.Snapshot{Control: s.control}
	if s.unit != "" {
		u, err := s.readUnit(ctx)
		if err != nil {
			return snap, err
		}
		snap.Unit = &u
	}
	resp, err := s.call(ctx, control.Request{Command: "status"}, answerTimeout)
	if err != nil {
		return snap, err
	}
	snap.Drover = resp.Status
	s.rememberSlots(resp.Status)
	return snap, nil
}

// readUnit reads the unit over a new D-Bus connection each time: one a
// second costs little, and a restarted dbus-daemon is no special case.
func (s *topSource) readUnit(ctx context.Context) (top.Unit, error) {
	bus, err := connectSystemd(ctx)
	if err != nil {
		return top.Unit{}, err
	}
	defer bus.close()
	u, err := bus.unit(ctx, s.unit)
	if err != nil {
		return top.Unit{}, err
	}
	return top.Unit{
		Name: u.Name, ActiveState: u.ActiveState, SubState: u.SubState, StatusText: u.StatusText,
		MainPID: u.MainPID, NRestarts: u.NRestarts, ActiveSince: u.ActiveSince,
	}, nil
}

func (s *topSource) Reload(ctx context.Context) error {
	_, err := s.call(ctx, control.Request{Command: "reload"}, 10*time.Minute)
	return err
}

func (s *topSource) Scale(ctx context.Context, delta int) (int, error) {
	resp, err := s.call(ctx, control.Request{Command: "scale", Count: fmt.Sprintf("%+d", delta)}, answerTimeout)
	return resp.Workers, err
}

// call makes one control request, within ctx's deadline if it is sooner
// than limit (control.Call takes a timeout, not a context).
func (s *topSource) call(ctx context.Context, req control.Request, limit time.Duration) (control.Response, error) {
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d))
	}
	resp, err := control.Call(s.control, req, limit)
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return resp, explainControlError(err)
	}
	return resp, nil
}

func (s *topSource) rememberSlots(st *control.Status) {
	m := make(map[string]string, len(st.Processes))
	for _, p := range st.Processes {
		if p.Pid != 0 {
			m[strconv.Itoa(p.Pid)] = strconv.Itoa(p.Slot)
		}
	}
	s.mu.Lock()
	s.slotOf = m
	s.mu.Unlock()
}

// Logs reads the unit's last journal entries as drover logs labels them,
// or without a unit asks drover for the lines it printed.
// The workers now running are known by pid from the last status, so their
// lines are labelled even when drover's "worker started" entry is older
// than the entries read.
func (s *topSource) Logs(ctx context.Context, n int) ([]string, error) {
	if s.unit == "" {
		// A dev-mode drover prints its workers' lines and keeps the last
		// ones for this.
		resp, err := s.call(ctx, control.Request{Command: "logs", Lines: n}, answerTimeout)
		if err != nil {
			return nil, top.ErrNoLogs
		}
		return resp.Lines, nil
	}
	// Some entries are dropped (a worker gone before the window began), so
	// read more than are shown.
	cmd := exec.CommandContext(ctx, "journalctl", "-u", s.unit, "-b", "-o", "json", "-n", strconv.Itoa(2*n), "--no-pager", "-q")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	f := &logFilter{slot: -1, slotOf: s.knownSlots()}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
	for sc.Scan() {
		lines = append(lines, f.lines(sc.Bytes())...)
	}
	return lines[max(0, len(lines)-n):], nil
}

func (s *topSource) knownSlots() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.slotOf))
	for pid, slot := range s.slotOf {
		m[pid] = slot
	}
	return m
}
