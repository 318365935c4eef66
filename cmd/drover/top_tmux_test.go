package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/testbin"
)

// tmuxServer is a tmux server of the test's own, on a socket in its
// temporary directory (never the user's default server), killed in
// Cleanup whatever the test's outcome.
type tmuxServer struct {
	t    *testing.T
	tmux string
	sock string
}

func startTmux(t *testing.T, width, height int, argv ...string) *tmuxServer {
	t.Helper()
	tmux := testbin.Tool(t, "tmux")
	s := &tmuxServer{t: t, tmux: tmux, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { exec.Command(tmux, "-S", s.sock, "kill-server").Run() })
	// With the command as several arguments tmux execs it, without the
	// user's default-shell in between.
	args := append([]string{"new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height)}, argv...)
	s.run(args...)
	return s
}

func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen is what the pane shows now.
func (s *tmuxServer) screen() string { return s.run("capture-pane", "-p") }

// topRow is a worker row of drover top: slot, then pid.
var topRow = regexp.MustCompile(`(?m)^\d+\s+(\d+)\s+\d+\s+[a-z-]+\s`)

// screenPids are the pids in drover top's PID column.
func screenPids(screen string) []string {
	var pids []string
	for _, m := range topRow.FindAllStringSubmatch(screen, -1) {
		pids = append(pids, m[1])
	}
	slices.Sort(pids)
	return pids
}

// statusPids are the worker pids drover status --json gives.
func statusPids(t *testing.T, control string) []string {
	t.Helper()
	out, err := exec.Command(bin.drover, "status", "--json", "--control", control).Output()
	if err != nil {
		t.Fatalf("drover status --json: %v\n%s", err, out)
	}
	var r struct {
		Drover struct {
			Processes []struct {
				Pid int `json:"pid"`
			} `json:"processes"`
		} `json:"drover"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("drover status --json: %v\n%s", err, out)
	}
	var pids []string
	for _, p := range r.Drover.Processes {
		if p.Pid != 0 {
			pids = append(pids, strconv.Itoa(p.Pid))
		}
	}
	slices.Sort(pids)
	return pids
}

// waitScreen polls the pane until ok says its content is right.
func (s *tmuxServer) waitScreen(what string, ok func(screen string) bool) {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		screen := s.screen()
		if ok(screen) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %s on screen within %v:\n%s", what, waitLimit, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The proof for drover top: driven in tmux, the screen shows every
// worker pid drover status --json shows, and the lines the workers wrote
// (dev mode: drover keeps the last ones), follows a kill -9 to the new
// worker, and q exits 0. Without a terminal it refuses plainly.
func TestTopInTmux(t *testing.T) {
	dir := t.TempDir()
	control := filepath.Join(dir, "control.sock")
	p := startProcess(t, bin.drover, "run", "--workers", "2", "--listen", "127.0.0.1:0", "--control", control, "--",
		"/bin/sh", "-c", `echo "hello from slot $DROVER_WORKER_ID"; exec "$0" "$@"`, bin.testworker, "-mode", "notify")
	p.stderr.waitFor(t, "all 2 workers ready")

	if out, err := exec.Command(bin.drover, "top", "--control", control).CombinedOutput(); exitCode(err) != 1 || string(out) != "drover top: needs a terminal (try drover status)\n" {
		t.Errorf("drover top on a pipe: exit %d\n%q", exitCode(err), out)
	}

	exitFile := filepath.Join(dir, "exit")
	tm := startTmux(t, 200, 50, "sh", "-c", `"$0" top --control "$1"; echo EXIT=$? > "$2"`, bin.drover, control, exitFile)
	before := statusPids(t, control)
	if len(before) != 2 {
		t.Fatalf("drover status --json: pids %v", before)
	}
	tm.waitScreen("pids "+strings.Join(before, " "), func(s string) bool { return slices.Equal(screenPids(s), before) })
	tm.waitScreen("both workers' first lines", func(s string) bool {
		for _, pid := range before {
			if !regexp.MustCompile(`\[w[01] ` + pid + `\] hello from slot [01]`).MatchString(s) {
				return false
			}
		}
		return true
	})

	killed, _ := strconv.Atoi(before[0])
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tm.waitScreen("the replacement of "+before[0], func(s string) bool {
		now := statusPids(t, control)
		return len(now) == 2 && !slices.Contains(now, before[0]) && slices.Equal(screenPids(s), now)
	})

	tm.run("send-keys", "q")
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(exitFile)
		if string(b) == "EXIT=0\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after q: exit file %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exitCode is a command's exit code from its error (0 for nil).
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return -1
}
