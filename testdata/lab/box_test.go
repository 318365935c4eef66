package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// box is one scenario on one booted machine: helpers that run commands
// inside and log each command with what it printed, so that a scenario's
// log is its evidence.
type box struct {
	t      *testing.T
	ctx    context.Context
	m      *Machine
	build  *Build
	port   int
	cursor string // journal position when the scenario started
	// measured collects the figures a scenario reports (report), which
	// the lab prints again under its table of results.
	measured func(string)
}

// report logs a measurement and keeps it for the lab's summary.
func (b *box) report(format string, args ...any) {
	b.t.Helper()
	line := fmt.Sprintf(format, args...)
	b.t.Log(line)
	if b.measured != nil {
		b.measured(line)
	}
}

// Paths inside the container.
const (
	serviceDropIns = "/etc/systemd/system/myapp.service.d"
	socketDropIns  = "/etc/systemd/system/myapp.socket.d"
	// exitsFile gets one line per stop of myapp.service, from an
	// ExecStopPost= the lab adds: "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS".
	// It is how the lab sees drover's exit status after systemd has
	// unloaded the stopped unit.
	exitsFile = "/run/drover-lab/exits"
)

// workers is the worker count the lab asks for: nspawn does not enforce
// CPU quotas, so auto would say "all host cores".
const workers = 2

func newBox(t *testing.T, m *Machine, build *Build) *box {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	b := &box{t: t, ctx: ctx, m: m, build: build}
	b.reset()
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpEvidence()
		}
	})
	return b
}

// reset brings the container back to the shipped units, stopped, with
// only the lab's base drop-ins: myapp.socket on a fresh port, --workers 2,
// and the ExecStopPost= that records exit statuses.
func (b *box) reset() {
	b.t.Helper()
	port, err := FreePort()
	if err != nil {
		b.t.Fatal(err)
	}
	b.port = port
	// Stopping the socket stops the service (Requires=). A drover a
	// scenario left stuck would hold the stop for TimeoutStopSec=: kill it.
	if _, err := b.quiet("systemctl", "stop", "myapp.socket", "myapp.service"); err != nil {
		b.quiet("systemctl", "kill", "--signal=SIGKILL", "myapp.service")
		b.quiet("systemctl", "stop", "myapp.socket", "myapp.service")
	}
	b.quiet("rm", "-rf", serviceDropIns, socketDropIns, "/run/drover-lab")
	// A scenario may have upgraded myapp: put this build's back.
	if err := b.m.InstallFile(b.build.Myapp, MyappPath); err != nil {
		b.t.Fatal(err)
	}
	b.quiet("mkdir", "-p", "/run/drover-lab")
	b.write(SocketDropInPath, SocketDropIn(port))
	b.write(serviceDropIns+"/lab-base.conf", fmt.Sprintf(`# Written by the drover lab for every scenario.
[Service]
ExecStart=
ExecStart=%s
ExecStopPost=+/bin/sh -c 'echo "$$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS" >> %s'
`, b.execStart("", ""), exitsFile))
	b.quiet("systemctl", "daemon-reload")
	// Forget failures and the start rate limit of earlier scenarios.
	b.quiet("systemctl", "reset-failed", "myapp.service", "myapp.socket")
	if st := b.show("myapp.service", "ActiveState")["ActiveState"]; st != "inactive" {
		b.t.Fatalf("reset: myapp.service is %q, want inactive", st)
	}
	out, err := b.m.Output(b.ctx, "journalctl", "-n", "1", "--show-cursor", "-q", "-o", "cat")
	if err != nil {
		b.t.Fatalf("journal cursor: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	b.cursor = strings.TrimPrefix(lines[len(lines)-1], "-- cursor: ")
	b.t.Logf("reset: shipped units stopped, lab drop-ins only, myapp.socket on 127.0.0.1:%d", port)
}

// execStart is the shipped ExecStart= with --workers 2 and flags added
// after "run", and the worker command replaced when command is not "".
// Deriving it from the shipped unit keeps the lab testing what users get.
func (b *box) execStart(flags, command string) string {
	b.t.Helper()
	shipped := b.unitSetting(b.build.Service, "ExecStart")
	run, worker, ok := strings.Cut(shipped, " -- ")
	if !ok || !strings.HasSuffix(run, " run") && !strings.Contains(run, " run ") {
		b.t.Fatalf("shipped ExecStart=%s: want /usr/bin/drover run [flags] -- COMMAND", shipped)
	}
	if command == "" {
		command = worker
	}
	run += fmt.Sprintf(" --workers %d", workers)
	if flags != "" {
		run += " " + flags
	}
	return run + " -- " + command
}

// unitSetting returns the last value of key in a unit file.
func (b *box) unitSetting(path, key string) string {
	b.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	var value string
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			value = v
		}
	}
	if value == "" {
		b.t.Fatalf("%s has no %s=", path, key)
	}
	return value
}

// dropIn adds a scenario's drop-in for unit and reloads systemd.
func (b *box) dropIn(unit, text string) {
	b.t.Helper()
	path := fmt.Sprintf("/etc/systemd/system/%s.d/lab-scenario.conf", unit)
	b.write(path, text)
	b.t.Logf("drop-in %s:\n%s", path, text)
	b.sh("systemctl", "daemon-reload")
}

func (b *box) write(path, text string) {
	b.t.Helper()
	if err := b.m.WriteFile(b.ctx, path, []byte(text)); err != nil {
		b.t.Fatal(err)
	}
}

// sh runs a command inside, logs it with its output and fails the test if
// it exits non-zero.
func (b *box) sh(args ...string) string {
	b.t.Helper()
	out, code := b.try(args...)
	if code != 0 {
		b.t.Fatalf("%s: exit status %d", strings.Join(args, " "), code)
	}
	return out
}

// try runs a command inside, logs it with its output and returns both
// output and exit code.
func (b *box) try(args ...string) (string, int) {
	b.t.Helper()
	start := time.Now()
	out, err := b.m.Output(b.ctx, args...)
	code, exited := ErrExit(err)
	if err != nil && !exited {
		b.t.Fatalf("$ %s\n%s\n%v", strings.Join(args, " "), out, err)
	}
	took := time.Since(start)
	note := ""
	if code != 0 {
		note = fmt.Sprintf(" (exit %d)", code)
	}
	if took > 500*time.Millisecond {
		note += fmt.Sprintf(" (took %v)", took.Round(time.Millisecond))
	}
	b.t.Logf("$ %s%s\n%s", strings.Join(args, " "), note, strings.TrimRight(out, "\n"))
	return out, code
}

// quiet runs a command inside without logging it: for resets and polls.
func (b *box) quiet(args ...string) (string, error) {
	return b.m.Output(b.ctx, args...)
}

// show returns unit properties (systemctl show), without logging.
func (b *box) show(unit string, props ...string) map[string]string {
	b.t.Helper()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := b.m.Output(b.ctx, append([]string{"systemctl"}, args...)...)
	if err != nil {
		b.t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// showLogged is show, logged as a command with its output.
func (b *box) showLogged(unit string, props ...string) map[string]string {
	b.t.Helper()
	m := b.show(unit, props...)
	var lines []string
	for _, p := range props {
		lines = append(lines, p+"="+m[p])
	}
	b.t.Logf("$ systemctl show %s -p %s\n%s", unit, strings.Join(props, " -p "), strings.Join(lines, "\n"))
	return m
}

// waitFor polls check every 50ms until it says done, for at most timeout.
// check returns what it saw; the last observation is logged, and is the
// failure message on timeout.
func (b *box) waitFor(what string, timeout time.Duration, check func() (done bool, saw string)) string {
	b.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		done, saw := check()
		if done {
			b.t.Logf("waited %v for %s: %s", time.Since(start).Round(time.Millisecond), what, saw)
			return saw
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %v for %s; last saw: %s", timeout, what, saw)
		}
		select {
		case <-b.ctx.Done():
			b.t.Fatalf("waiting for %s: %v; last saw: %s", what, b.ctx.Err(), saw)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// journal returns the journal of myapp.service and myapp.socket since the
// scenario started.
func (b *box) journal() string {
	b.t.Helper()
	out, err := b.quiet("journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor="+b.cursor, "-u", "myapp.service", "-u", "myapp.socket")
	if err != nil {
		b.t.Fatalf("journalctl: %v\n%s", err, out)
	}
	return out
}

// waitJournal waits until the scenario's journal contains every want (the
// journal is written asynchronously), then logs it.
func (b *box) waitJournal(want ...string) string {
	b.t.Helper()
	var j string
	b.waitFor(fmt.Sprintf("the journal to show %q", want), 10*time.Second, func() (bool, string) {
		j = b.journal()
		for _, w := range want {
			if !strings.Contains(j, w) {
				return false, "no " + strconv.Quote(w)
			}
		}
		return true, "found"
	})
	b.t.Logf("$ journalctl -u myapp.service -u myapp.socket (this scenario)\n%s", trimGoDump(j))
	return j
}

// trimGoDump drops the register and goroutine dump a Go program prints on
// SIGABRT: dozens of lines that bury the evidence.
func trimGoDump(journal string) string {
	var out []string
	dropped := 0
	for line := range strings.SplitSeq(strings.TrimRight(journal, "\n"), "\n") {
		_, msg, _ := strings.Cut(line, "]: ")
		if goDumpLine.MatchString(msg) {
			dropped++
			continue
		}
		out = append(out, line)
	}
	if dropped > 0 {
		out = append(out, fmt.Sprintf("[%d lines of Go stack dump left out]", dropped))
	}
	return strings.Join(out, "\n")
}

// goDumpLine matches the lines of a Go crash dump: registers, goroutine
// headers, frames (function lines and tab-indented file lines).
var goDumpLine = regexp.MustCompile(`^(\t|goroutine |created by |(r[a-z0-9]+|rip|rflags|[cfg]s)\s+0x|[\w./*()\[\]-]+\(.*\)$)`)

// dumpEvidence logs the units' status and journal when a scenario failed.
func (b *box) dumpEvidence() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := b.m.Output(ctx, "systemctl", "status", "--no-pager", "-n", "0", "myapp.service", "myapp.socket")
	b.t.Logf("on failure: $ systemctl status myapp.service myapp.socket\n%s", out)
	j, _ := b.m.Output(ctx, "journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor="+b.cursor, "-u", "myapp.service", "-u", "myapp.socket")
	lines := strings.Split(trimGoDump(j), "\n")
	if len(lines) > 80 {
		lines = append([]string{fmt.Sprintf("[first %d lines left out]", len(lines)-80)}, lines[len(lines)-80:]...)
	}
	b.t.Logf("on failure: journal of this scenario:\n%s", strings.Join(lines, "\n"))
}

// exits returns the lines exitsFile has so far, one per stop.
func (b *box) exits() []string {
	b.t.Helper()
	out, _ := b.quiet("cat", exitsFile)
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// reply is one answer of example-worker.
type reply struct {
	Body       string
	Version    string
	Pid        int
	Worker     string
	Generation string
	// Connected and Answered are measured from the start of the request.
	Connected, Answered time.Duration
}

// get sends one request on a new connection to myapp.socket.
func (b *box) get(timeout time.Duration) (reply, error) {
	return b.getAddr(fmt.Sprintf("127.0.0.1:%d", b.port), timeout)
}

// getAddr sends one request on a new connection to addr and parses
// example-worker's answer.
func (b *box) getAddr(addr string, timeout time.Duration) (reply, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	var r reply
	start := time.Now()
	trace := &httptrace.ClientTrace{ConnectDone: func(_, _ string, err error) {
		if err == nil {
			r.Connected = time.Since(start)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", "http://"+addr+"/", nil)
	if err != nil {
		return r, err
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.Answered = time.Since(start)
	r.Body = string(body)
	if err != nil {
		return r, fmt.Errorf("read answer: %w", err)
	}
	m := replyRE.FindStringSubmatch(r.Body)
	if m == nil {
		return r, fmt.Errorf("answer %q is not example-worker's", r.Body)
	}
	r.Version, r.Worker, r.Generation = m[1], m[3], m[4]
	r.Pid, _ = strconv.Atoi(m[2])
	return r, nil
}

// getRaw sends one request and returns the body, whatever answers.
func (b *box) getRaw(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/", b.port), nil)
	if err != nil {
		return "", err
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// Every request on its own connection: each is a fresh accept, so requests
// spread over the workers and none rides a connection of a dead one.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// getLogged is get, logged, failing the test on error.
func (b *box) getLogged(timeout time.Duration) reply {
	b.t.Helper()
	r, err := b.get(timeout)
	if err != nil {
		b.t.Fatalf("GET http://127.0.0.1:%d/: %v", b.port, err)
	}
	b.t.Logf("GET http://127.0.0.1:%d/ -> %s (connected after %v, answered after %v)", b.port, strings.TrimSpace(r.Body), r.Connected.Round(time.Microsecond), r.Answered.Round(time.Millisecond))
	return r
}

// distinctWorkers sends requests (a few at a time, each on a new
// connection) until n different worker pids have answered. Any failed
// request fails the test: nothing in these scenarios may drop one.
func (b *box) distinctWorkers(n int) []reply {
	b.t.Helper()
	seen := map[int]reply{}
	requests := 0
	b.waitFor(fmt.Sprintf("%d distinct worker pids to answer", n), 15*time.Second, func() (bool, string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for range 4 {
			wg.Go(func() {
				r, err := b.get(5 * time.Second)
				mu.Lock()
				defer mu.Unlock()
				requests++
				if err != nil {
					errs = append(errs, err)
					return
				}
				if _, ok := seen[r.Pid]; !ok {
					seen[r.Pid] = r
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			b.t.Fatalf("request to 127.0.0.1:%d failed: %v", b.port, errs[0])
		}
		return len(seen) >= n, fmt.Sprintf("%d distinct pids in %d requests", len(seen), requests)
	})
	var out []reply
	for _, r := range seen {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b reply) int { return strings.Compare(a.Worker, b.Worker) })
	for _, r := range out {
		b.t.Logf("  answered: %s", strings.TrimSpace(r.Body))
	}
	if len(out) != n {
		b.t.Fatalf("%d distinct worker pids answered, want exactly %d", len(out), n)
	}
	return out
}

// startByConnection starts myapp.socket and lets the first connection
// start myapp.service, as in production; it returns once the service is
// active and that connection was answered.
func (b *box) startByConnection() reply {
	b.t.Helper()
	b.sh("systemctl", "start", "myapp.socket")
	r := b.getLogged(30 * time.Second)
	b.waitFor("myapp.service to be active", 10*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "ActiveState", "StatusText")
		return st["ActiveState"] == "active", fmt.Sprintf("ActiveState=%s StatusText=%q", st["ActiveState"], st["StatusText"])
	})
	return r
}

// mainPid returns myapp.service's MainPID, checking it is drover.
func (b *box) mainPid() int {
	b.t.Helper()
	pid, err := strconv.Atoi(b.showLogged("myapp.service", "MainPID")["MainPID"])
	if err != nil || pid == 0 {
		b.t.Fatalf("myapp.service has no MainPID")
	}
	return pid
}

// cmdline returns /proc/PID/cmdline inside, spaces for NULs, or "" when the
// process is gone.
func (b *box) cmdline(pid int) string {
	out, err := b.quiet("cat", fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(out, "\x00", " "))
}

// alive lists which of pids still exist inside.
func (b *box) alive(pids ...int) []int {
	var out []int
	for _, pid := range pids {
		if _, err := b.quiet("test", "-d", fmt.Sprintf("/proc/%d", pid)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// cgroupProcs lists the pids in a unit's cgroup (ControlGroup=), reading
// whichever hierarchy systemd tracks units in: unified (v2), hybrid
// (/sys/fs/cgroup/unified) or legacy (name=systemd). ok is false when the
// cgroup does not exist.
func (b *box) cgroupProcs(cgroup string) (pids []int, ok bool) {
	b.t.Helper()
	for _, base := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"} {
		out, err := b.quiet("cat", base+cgroup+"/cgroup.procs")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
				pids = append(pids, pid)
			}
		}
		slices.Sort(pids)
		return pids, true
	}
	return nil, false
}

// statusLine returns the `Status: "..."` line of systemctl status output.
func statusLine(status string) string {
	for line := range strings.SplitSeq(status, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "Status: "); ok {
			return strings.Trim(s, `"`)
		}
	}
	return ""
}

// dialRefused reports whether a TCP connection to port is refused.
func dialRefused(port int) (bool, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err == nil {
		c.Close()
		return false, nil
	}
	return strings.Contains(err.Error(), "connection refused"), err
}
