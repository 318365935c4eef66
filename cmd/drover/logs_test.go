package main

import (
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
		got = append(got, f.lines([]byte(e))...)
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

// A worker that fails at once may write before drover logged that it
// started: its lines come first in the journal, and are shown after
// drover's entry names their slot (the fleet's broken build found it).
func TestLogFilterWorkerBeforeItsStart(t *testing.T) {
	entries := []string{
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"200","MESSAGE":"myapp: broken build, cannot start"}`,
		`{"SYSLOG_IDENTIFIER":"sh","_PID":"300","MESSAGE":"not drover's worker"}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker started generation=3 pid=200 worker=0","WORKER_ID":"0","WORKER_PID":"200"}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker failed pid=200 worker=0","WORKER_ID":"0","WORKER_PID":"200"}`,
	}
	f := &logFilter{slot: -1, slotOf: map[string]string{}}
	var got []string
	for _, e := range entries {
		got = append(got, f.lines([]byte(e))...)
	}
	want := []string{
		"drover: worker started generation=3 pid=200 worker=0",
		"[w0 200] myapp: broken build, cannot start",
		"drover: worker failed pid=200 worker=0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
