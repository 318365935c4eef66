package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor/output"
)

func logsCmd() *cobra.Command {
	fs, o := logsFlags()
	c := &cobra.Command{
		Use:   "logs UNIT [--worker N] [-n LINES] [-f]",
		Short: "show a unit's worker output and drover's events, by slot",
		Long: `Shows the journal of UNIT for the current boot: every line a worker wrote,
labelled with its slot and pid as in dev mode ([w2 1234]), and drover's own
events. Workers log to journald under their own pid; drover's "worker
started" entries (WORKER_ID, WORKER_PID) say which slot each pid served, so
--worker N selects one slot's lines across all the workers that filled it
(restarts, recycles, reloads), and drover's events about that slot.

Built on journalctl -o json; reading another service's journal needs root,
the adm or systemd-journal group, or the service's user.`,
		ValidArgsFunction: completeUnit,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(logsCommand(o, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

type logsOptions struct {
	worker int
	lines  int
	follow bool
	since  string
}

func logsFlags() (*pflag.FlagSet, *logsOptions) {
	o := &logsOptions{}
	fs := pflag.NewFlagSet("drover logs", pflag.ContinueOnError)
	fs.IntVar(&o.worker, "worker", -1, "only slot `N`'s lines and drover's events about it")
	// journalctl's names: -n, --lines and -f, --follow.
	fs.IntVarP(&o.lines, "lines", "n", 50, "show the last `LINES` lines (all of them with -f)")
	fs.BoolVarP(&o.follow, "follow", "f", false, "go on showing new lines")
	fs.StringVar(&o.since, "since", "", "only lines since `TIME` (as journalctl --since: \"10 min ago\", 2026-12-01 10:00)")
	return fs, o
}

func logsCommand(o *logsOptions, pos []string, stdout, stderr io.Writer) int {
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "drover logs: want one UNIT (see drover help logs)")
		return exitUsage
	}
	jargs := []string{"-u", serviceName(pos[0]), "-b", "-o", "json", "--no-pager", "--no-tail", "-q"}
	if o.since != "" {
		jargs = append(jargs, "--since", o.since)
	}
	if o.follow {
		jargs = append(jargs, "-f")
	}
	cmd := exec.Command("journalctl", jargs...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "drover logs: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "drover logs: run journalctl: %v\n", err)
		return 1
	}
	f := &logFilter{slot: o.worker, slotOf: map[string]string{}}
	var tail []string
	emit := func(line string) {
		if o.follow {
			fmt.Fprintln(stdout, line)
			return
		}
		if tail = append(tail, line); len(tail) > o.lines {
			tail = tail[1:]
		}
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
	for sc.Scan() {
		for _, line := range f.lines(sc.Bytes()) {
			emit(line)
		}
	}
	if err := cmd.Wait(); err != nil {
		fmt.Fprintf(stderr, "drover logs: journalctl: %v\n", err)
		return 1
	}
	for _, line := range tail {
		fmt.Fprintln(stdout, line)
	}
	return 0
}

// logFilter turns journal entries into drover logs lines.
type logFilter struct {
	slot   int               // -1: every slot
	slotOf map[string]string // worker pid -> slot, from drover's "worker started"
	// pending holds lines of pids not known yet: a worker may write
	// before drover has logged that it started (a program that fails at
	// once), so its lines can come first in the journal.
	pending []pendingEntry
}

type pendingEntry struct {
	pid string
	e   map[string]any
}

// maxPending bounds the lines kept for pids that drover never names
// (other processes of the unit): the oldest go first.
const maxPending = 1000

// lines returns what one journal entry shows: its own line, and the lines
// of a worker held until this entry named its slot.
func (f *logFilter) lines(raw []byte) []string {
	var e map[string]any
	if json.Unmarshal(raw, &e) != nil {
		return nil
	}
	var out []string
	if line, ok := f.format(e); ok {
		out = append(out, line)
	}
	pid, _ := e["WORKER_PID"].(string)
	if _, known := f.slotOf[pid]; !known || pid == "" {
		return out
	}
	kept := f.pending[:0]
	for _, p := range f.pending {
		if p.pid != pid {
			kept = append(kept, p)
		} else if line, ok := f.format(p.e); ok {
			out = append(out, line)
		}
	}
	f.pending = kept
	return out
}

func (f *logFilter) format(e map[string]any) (string, bool) {
	str := func(k string) string { s, _ := e[k].(string); return s }
	msg := journalMessage(e["MESSAGE"])
	when := ""
	if us, err := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64); err == nil {
		when = time.UnixMicro(us).Format(time.StampMilli) + " "
	}
	if str("SYSLOG_IDENTIFIER") == "drover" {
		slot := str("WORKER_ID")
		if strings.HasPrefix(msg, "worker started") && str("WORKER_PID") != "" {
			f.slotOf[str("WORKER_PID")] = slot
		}
		if f.slot >= 0 && slot != strconv.Itoa(f.slot) {
			return "", false
		}
		return when + "drover: " + output.Sanitize(msg), true
	}
	// A worker's own line (its pid), or one drover forwarded from a
	// worker without a journal stream (its fields).
	pid, slot := str("_PID"), f.slotOf[str("_PID")]
	if id := str("WORKER_ID"); id != "" {
		pid, slot = str("WORKER_PID"), id
	}
	if slot == "" && pid != "" {
		if f.pending = append(f.pending, pendingEntry{pid, e}); len(f.pending) > maxPending {
			f.pending = f.pending[1:]
		}
		return "", false
	}
	if slot == "" || (f.slot >= 0 && slot != strconv.Itoa(f.slot)) {
		return "", false
	}
	return fmt.Sprintf("%s[w%s %s] %s", when, slot, pid, output.Sanitize(msg)), true
}

// journalMessage is MESSAGE as text: journalctl -o json gives a string, or
// an array of bytes for a message that is not UTF-8 or has control bytes.
func journalMessage(v any) string {
	switch m := v.(type) {
	case string:
		return m
	case []any:
		b := make([]byte, 0, len(m))
		for _, x := range m {
			if n, ok := x.(float64); ok {
				b = append(b, byte(n))
			}
		}
		return string(b)
	}
	return ""
}
