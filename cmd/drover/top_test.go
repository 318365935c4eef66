package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/droverd/drover/cmd/drover/top"
	"github.com/droverd/drover/supervisor/control"
)

// drover top's log lines come from journalctl as drover logs reads them,
// with the running workers known by pid from the last status, so a
// worker's lines are labelled even when drover's "worker started" entry is
// older than the entries read.
func TestTopSourceLogs(t *testing.T) {
	dir := t.TempDir()
	entries := strings.Join([]string{
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"4102","MESSAGE":"hello \u001b[2J"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"999","MESSAGE":"a worker long gone"}`,
		`{"SYSLOG_IDENTIFIER":"drover","MESSAGE":"worker started pid=4103 worker=0","WORKER_ID":"0","WORKER_PID":"4103"}`,
		`{"SYSLOG_IDENTIFIER":"myapp","_PID":"4103","MESSAGE":"new one"}`,
	}, "\n") + "\n"
	os.WriteFile(filepath.Join(dir, "entries"), []byte(entries), 0o644)
	os.WriteFile(filepath.Join(dir, "journalctl"), []byte("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\ncat \"$(dirname \"$0\")/entries\"\n"), 0o755)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	src := &topSource{unit: "myapp.service"}
	src.rememberSlots(&control.Status{Processes: []control.WorkerStatus{{Slot: 1, Pid: 4102}, {Slot: 2, State: "backing-off"}}})
	lines, err := src.Logs(context.Background(), 3)
	want := []string{`[w1 4102] hello \x1b[2J`, "drover: worker started pid=4103 worker=0", "[w0 4103] new one"}
	if err != nil || !slices.Equal(lines, want) {
		t.Errorf("Logs: %v\n%s\nwant\n%s", err, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if !strings.Contains(string(args), "-u myapp.service") || !strings.Contains(string(args), "-n 6") {
		t.Errorf("journalctl %s", args)
	}
	if lines, _ := src.Logs(context.Background(), 1); !slices.Equal(lines, want[2:]) {
		t.Errorf("last line: %q", lines)
	}

	if _, err := (&topSource{control: "/x"}).Logs(context.Background(), 3); !errors.Is(err, top.ErrNoLogs) {
		t.Errorf("dev mode: %v, want ErrNoLogs", err)
	}
}

// drover top refuses, in one line and with drover status's exit codes,
// what it cannot show, before it draws anything.
func TestTopErrors(t *testing.T) {
	bus := startFakeSystemd(t, map[string]map[string]map[string]dbus.Variant{
		"stopped.service": serviceUnit("inactive", 0, []string{"stopped"}),
		"plain.service":   serviceUnit("active", 1, nil),
	})
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr}
	for _, k := range os.Environ() {
		if !strings.HasPrefix(k, "RUNTIME_DIRECTORY=") {
			env = append(env, k)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"top", "plain"}, 1, "drover top: plain.service has no RuntimeDirectory=, so no drover control socket: not run by drover"},
		{[]string{"top", "stopped"}, exitNotRunning, "drover top: stopped.service is not running (inactive)\n"},
		{[]string{"top"}, exitUsage, "drover top: which drover?"},
		{[]string{"top", "a", "b"}, exitUsage, "one UNIT at most"},
		{[]string{"top", "--interval", "0", "--control", "/x"}, exitUsage, "want a positive duration"},
		{[]string{"top", "--control", filepath.Join(t.TempDir(), "none.sock")}, 1, "is drover running there"},
	} {
		cmd := exec.Command(bin.drover, tc.args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if exitCode(err) != tc.code || !strings.Contains(string(out), tc.want) || strings.Count(string(out), "\n") != 1 {
			t.Errorf("drover %v: exit %d, want %d with one line %q:\n%s", tc.args, exitCode(err), tc.code, tc.want, out)
		}
	}
}
