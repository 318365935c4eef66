package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// drover logs maps pids to slots from drover's "worker started" entries, so
// one slot's lines are selected across its workers.
func TestLogFilter(t *testing.T) {
	entries := []string{
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker started generation=1 pid=100 worker=0","WORKER_ID":"0","WORKER_PID":"100"}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker started generation=1 pid=101 worker=1","WORKER_ID":"1","WORKER_PID":"101"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"100","MESSAGE":"zero says hi"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"101","MESSAGE":[111,110,101,27,91,50,74]}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker failed pid=101 worker=1","WORKER_ID":"1","WORKER_PID":"101"}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker started generation=1 pid=102 worker=1","WORKER_ID":"1","WORKER_PID":"102"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"102","MESSAGE":"one again"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"999","MESSAGE":"not a worker of this unit's drover"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"1","MESSAGE":"forwarded","WORKER_ID":"1","WORKER_PID":"103"}`,
	}
	f := &logFilter{slot: 1, slotOf: map[string]string{}}
	var got []string
	for _, e := range entries {
		if line, ok := f.line([]byte(e)); ok {
			got = append(got, line)
		}
	}
	want := []string{
		"drover: worker started generation=1 pid=101 worker=1",
		`[w1 101] one\x1b[2J`,
		"drover: worker failed pid=101 worker=1",
		"drover: worker started generation=1 pid=102 worker=1",
		"[w1 102] one again",
		"[w1 103] forwarded",
	}
	if !slices.Equal(got, want) {
		t.Errorf("slot 1:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, args := range [][]string{{"myapp", "--worker", "1", "-f"}, {"--worker", "1", "myapp", "-f"}, {"-f", "--worker=1", "myapp"}} {
		fs, o := logsFlags()
		pos, _, ok := parseInterleaved(logsCmd(), fs, args, io.Discard, io.Discard)
		if !ok || !slices.Equal(pos, []string{"myapp"}) || o.worker != 1 || !o.follow {
			t.Errorf("%q: pos %q worker %d follow %v", args, pos, o.worker, o.follow)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("v", false, "")
	pos, _, _ := parseInterleaved(command{name: "x"}, fs, []string{"a", "--", "-v", "b"}, io.Discard, io.Discard)
	if !slices.Equal(pos, []string{"a", "-v", "b"}) {
		t.Errorf("after --: %q", pos)
	}
}
