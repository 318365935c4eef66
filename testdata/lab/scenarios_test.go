package lab

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxExposure is what `systemd-analyze security myapp.service` must not
// exceed on systemd 257 (issue 3 §4). Older versions weigh settings
// differently, so 252's score is only reported.
const (
	maxExposure          = 2.0
	securityAssertedFrom = 257
)

var exposureRE = regexp.MustCompile(`Overall exposure level for myapp\.service: ([0-9.]+)`)

// testVerify: systemd itself finds nothing wrong in the shipped units:
// no unknown or misspelt settings, no missing executables.
func testVerify(b *box) {
	out, code := b.try("systemd-analyze", "verify", "myapp.socket", "myapp.service")
	if code != 0 || strings.TrimSpace(out) != "" {
		b.t.Errorf("systemd-analyze verify complained (exit %d): %s", code, out)
	}
}

// testSecurity: the shipped hardening scores 2.0 or better.
func testSecurity(b *box) {
	out, _ := b.m.Output(b.ctx, "systemd-analyze", "security", "--no-pager", "myapp.service")
	// The ✓ lines are most of it; the ✗ ones and the total are the evidence.
	var shown []string
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.HasPrefix(line, "✓") && strings.TrimSpace(line) != "" {
			shown = append(shown, line)
		}
	}
	b.t.Logf("$ systemd-analyze security myapp.service (✓ lines left out)\n%s", strings.Join(shown, "\n"))
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		b.t.Fatalf("no overall exposure level in systemd-analyze's output")
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.t.Fatalf("exposure %q: %v", m[1], err)
	}
	switch {
	case b.m.Distro.Systemd < securityAssertedFrom:
		b.t.Logf("exposure %.1f on systemd %d (reported only; asserted on %d+)", score, b.m.Distro.Systemd, securityAssertedFrom)
	case score > maxExposure:
		b.t.Fatalf("exposure %.1f, want %.1f or better", score, maxExposure)
	default:
		b.t.Logf("exposure %.1f <= %.1f", score, maxExposure)
	}
}

// sample is one observation of myapp.service's state.
type sample struct{ active, sub, status string }

func (s sample) String() string { return fmt.Sprintf("%s/%s %q", s.active, s.sub, s.status) }

// watchStates polls myapp.service until done returns true or timeout,
// returning the distinct states seen in order.
func (b *box) watchStates(timeout time.Duration, done func(sample) bool) []sample {
	b.t.Helper()
	var seen []sample
	deadline := time.Now().Add(timeout)
	for {
		p := b.show("myapp.service", "ActiveState", "SubState", "StatusText")
		s := sample{p["ActiveState"], p["SubState"], p["StatusText"]}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		if done(s) {
			return seen
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after %v myapp.service went through %v", timeout, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func logStates(b *box, seen []sample) {
	var lines []string
	for _, s := range seen {
		lines = append(lines, "  "+s.String())
	}
	b.t.Logf("myapp.service went through (ActiveState/SubState StatusText):\n%s", strings.Join(lines, "\n"))
}

// allReady is the start of drover's status line once every worker is.
var allReady = fmt.Sprintf("%d/%d workers ready", workers, workers)

// testSocketActivation: the socket alone listens; the first connection
// starts the service, which turns active only with every worker ready;
// status shows drover's line; N distinct workers answer.
func testSocketActivation(b *box) {
	b.sh("systemctl", "start", "myapp.socket")
	if st := b.showLogged("myapp.service", "ActiveState")["ActiveState"]; st != "inactive" {
		b.t.Fatalf("before any connection myapp.service is %s, want inactive", st)
	}
	first := make(chan error, 1)
	var r reply
	go func() {
		var err error
		r, err = b.get(30 * time.Second)
		first <- err
	}()
	var firstErr error
	answered := false
	seen := b.watchStates(30*time.Second, func(s sample) bool {
		if !answered {
			select {
			case firstErr = <-first:
				answered = true
			default:
			}
		}
		return answered && s.active == "active"
	})
	logStates(b, seen)
	if firstErr != nil {
		b.t.Fatalf("first connection: %v", firstErr)
	}
	b.t.Logf("first connection -> %s (connected after %v, answered after %v)", strings.TrimSpace(r.Body), r.Connected.Round(time.Microsecond), r.Answered.Round(time.Millisecond))
	if r.Version != b.build.Version {
		b.t.Errorf("answered by version %s, want this build's %s", r.Version, b.build.Version)
	}
	sawStarting := false
	for _, s := range seen {
		if s.active == "activating" {
			sawStarting = true
		}
		if s.active == "active" && !strings.HasPrefix(s.status, allReady) {
			b.t.Errorf("myapp.service active with status %q, want %q first", s.status, allReady)
		}
	}
	if !sawStarting {
		b.t.Errorf("never saw myapp.service activating (first state %v): did the connection start it?", seen[0])
	}
	status, _ := b.try("systemctl", "status", "--no-pager", "myapp.service")
	if line := statusLine(status); !strings.HasPrefix(line, allReady) {
		b.t.Errorf("systemctl status shows Status: %q, want drover's %q...", line, allReady)
	}
	b.distinctWorkers(workers)
}

// testReadyGating: with workers that become ready 3s apart, the unit stays
// activating, showing "1/2 workers ready", until the last one is; only
// then does `systemctl start` return.
func testReadyGating(b *box) {
	// Worker 0 is ready at once, worker 1 after 3s. $$ is systemd's
	// escape for the shell's $.
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("--ready notify", "/bin/sh -c 'exec "+TestworkerPath+" -mode notify -delay $$((DROVER_WORKER_ID * 3))s'")))
	b.sh("systemctl", "start", "myapp.socket")
	type result struct {
		out  string
		err  error
		took time.Duration
	}
	started := make(chan result, 1)
	go func() {
		start := time.Now()
		out, err := b.m.Output(b.ctx, "systemctl", "start", "myapp.service")
		started <- result{out, err, time.Since(start)}
	}()
	var res result
	returned := false
	seen := b.watchStates(20*time.Second, func(s sample) bool {
		if !returned {
			select {
			case res = <-started:
				returned = true
			default:
			}
		}
		return returned && s.active != "activating"
	})
	logStates(b, seen)
	b.t.Logf("$ systemctl start myapp.service (took %v)\n%s", res.took.Round(time.Millisecond), res.out)
	if res.err != nil {
		b.t.Fatalf("systemctl start myapp.service: %v", res.err)
	}
	partly := fmt.Sprintf("1/%d workers ready", workers)
	sawPartly := false
	for _, s := range seen {
		if s.active == "activating" && strings.Contains(s.status, partly) {
			sawPartly = true
		}
		if s.active == "active" && !strings.HasPrefix(s.status, allReady) {
			b.t.Errorf("myapp.service active with status %q, want %q first", s.status, allReady)
		}
	}
	if !sawPartly {
		b.t.Errorf("never saw myapp.service activating with %q", partly)
	}
	if last := seen[len(seen)-1]; last.active != "active" {
		b.t.Errorf("after systemctl start returned, myapp.service is %v, want active", last)
	}
	// Worker 1 became ready 3s after it started.
	if res.took < 2500*time.Millisecond {
		b.t.Errorf("systemctl start returned after %v, before the slow worker (3s) was ready", res.took)
	}
}

// workerReport is what testworker -mode report answers.
type workerReport struct {
	Pid int               `json:"pid"`
	Fds map[int]string    `json:"fds"`
	Env map[string]string `json:"env"`
}

// testHandoff: under real systemd each worker sees what systemd gives one
// service process: the socket at fd 3 and nothing more, LISTEN_FDS,
// LISTEN_FDNAMES from the socket unit, LISTEN_PID = its own pid, and none
// of systemd's variables meant for drover.
func testHandoff(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", TestworkerPath+" -mode report")))
	b.sh("systemctl", "start", "myapp.socket")
	fdName := b.unitSetting(b.build.Socket, "FileDescriptorName")
	reports := map[int]workerReport{}
	b.waitFor(fmt.Sprintf("%d workers to report", workers), 30*time.Second, func() (bool, string) {
		for range 4 {
			var rep workerReport
			if err := b.getJSON(&rep); err != nil {
				b.t.Fatalf("GET: %v", err)
			}
			reports[rep.Pid] = rep
		}
		return len(reports) >= workers, fmt.Sprintf("%d distinct pids", len(reports))
	})
	mainPid := b.mainPid()
	b.try("ls", "-l", fmt.Sprintf("/proc/%d/fd/", mainPid))
	droverFd3, _ := b.quiet("readlink", fmt.Sprintf("/proc/%d/fd/3", mainPid))
	droverFd3 = strings.TrimSpace(droverFd3)
	ids := map[string]bool{}
	for _, rep := range reports {
		js, _ := json.Marshal(rep)
		b.t.Logf("worker report: %s", js)
		want := map[string]string{
			"LISTEN_FDS":     "1",
			"LISTEN_FDNAMES": fdName,
			"LISTEN_PID":     strconv.Itoa(rep.Pid),
		}
		for k, v := range want {
			if rep.Env[k] != v {
				b.t.Errorf("worker %d: %s=%q, want %q", rep.Pid, k, rep.Env[k], v)
			}
		}
		for _, k := range []string{"WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PIDFDID"} {
			if v, ok := rep.Env[k]; ok {
				b.t.Errorf("worker %d has systemd's %s=%s, meant for drover", rep.Pid, k, v)
			}
		}
		if ns := rep.Env["NOTIFY_SOCKET"]; ns == "" || ns == "/run/systemd/notify" {
			b.t.Errorf("worker %d: NOTIFY_SOCKET=%q, want drover's own", rep.Pid, ns)
		}
		if !strings.HasPrefix(rep.Fds[3], "socket:") || rep.Fds[3] != droverFd3 {
			b.t.Errorf("worker %d: fd 3 is %q, want the socket systemd gave drover (%q)", rep.Pid, rep.Fds[3], droverFd3)
		}
		for fd, target := range rep.Fds {
			// Go 1.25+ runtimes keep their cgroup CPU limit files open (to
			// follow quota changes): testworker's own, opened before main.
			if fd > 3 && !strings.HasPrefix(target, "/sys/fs/cgroup/") {
				b.t.Errorf("worker %d: fd %d (%s) leaked in beyond the passed socket", rep.Pid, fd, target)
			}
		}
		ids[rep.Env["DROVER_WORKER_ID"]] = true
	}
	if len(ids) != workers {
		b.t.Errorf("worker ids %v, want %d distinct", ids, workers)
	}
}

// getJSON decodes one answer of testworker -mode report.
func (b *box) getJSON(v any) error {
	r, err := b.getRaw(10 * time.Second)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(r), v); err != nil {
		return fmt.Errorf("answer %q: %w", r, err)
	}
	return nil
}

// testCgroup: MainPID is drover; drover and exactly its workers, its
// children, are in myapp.service's cgroup.
func testCgroup(b *box) {
	b.startByConnection()
	mainPid := b.mainPid()
	if cmd := b.cmdline(mainPid); !strings.HasPrefix(cmd, "/usr/bin/drover run") {
		b.t.Fatalf("MainPID %d runs %q, want /usr/bin/drover run", mainPid, cmd)
	} else {
		b.t.Logf("MainPID %d runs %q", mainPid, cmd)
	}
	cg := b.showLogged("myapp.service", "ControlGroup")["ControlGroup"]
	ws := b.distinctWorkers(workers)
	want := []int{mainPid}
	for _, w := range ws {
		want = append(want, w.Pid)
		cgroupFile, _ := b.try("cat", fmt.Sprintf("/proc/%d/cgroup", w.Pid))
		if !strings.Contains(cgroupFile, ":"+cg+"\n") {
			b.t.Errorf("worker %d is not in %s", w.Pid, cg)
		}
		stat, _ := b.quiet("cat", fmt.Sprintf("/proc/%d/stat", w.Pid))
		// Field 4 of stat, after the parenthesised command name.
		if _, rest, ok := strings.Cut(stat, ") "); ok {
			f := strings.Fields(rest)
			if len(f) > 1 && f[1] != strconv.Itoa(mainPid) {
				b.t.Errorf("worker %d has parent %s, want drover (%d)", w.Pid, f[1], mainPid)
			}
		}
		if cmd := b.cmdline(w.Pid); cmd != "/usr/bin/myapp" {
			b.t.Errorf("worker %d runs %q, want /usr/bin/myapp", w.Pid, cmd)
		}
	}
	slices.Sort(want)
	// Delegate=yes: drover and each worker are in sub-cgroups of the
	// service's (testContainment looks at which).
	tree, ok := b.cgroupTree(cg)
	got := allPids(tree)
	b.t.Logf("cgroup %s holds pids %v (%v)", cg, got, tree)
	if !ok || !slices.Equal(got, want) {
		b.t.Errorf("cgroup %s holds %v, want drover and its workers %v", cg, got, want)
	}
	b.try("systemctl", "status", "--no-pager", "-n", "0", "myapp.service")
}

// testWorkerKill: a worker killed with SIGKILL is replaced in its slot by
// drover; the unit stays active and its NRestarts does not move.
func testWorkerKill(b *box) {
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	ws := b.distinctWorkers(workers)
	victim := ws[0]
	b.sh("kill", "-9", strconv.Itoa(victim.Pid))
	var replacement reply
	b.waitFor(fmt.Sprintf("a new worker in slot %s to answer", victim.Worker), 15*time.Second, func() (bool, string) {
		if st := b.show("myapp.service", "ActiveState")["ActiveState"]; st != "active" {
			b.t.Fatalf("myapp.service went %s after a worker was killed", st)
		}
		for range 4 {
			r, err := b.get(5 * time.Second)
			if err != nil {
				b.t.Fatalf("request after the kill failed: %v", err)
			}
			if r.Worker == victim.Worker && r.Pid != victim.Pid {
				replacement = r
				return true, strings.TrimSpace(r.Body)
			}
		}
		return false, "only the surviving worker answers"
	})
	if left := b.alive(victim.Pid); len(left) > 0 {
		b.t.Errorf("killed worker %d still exists", victim.Pid)
	}
	for _, w := range ws {
		if replacement.Pid == w.Pid {
			b.t.Errorf("replacement pid %d is an old worker's", w.Pid)
		}
	}
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("after a worker's death: MainPID %s->%s, NRestarts %s->%s, %s; want drover kept, NRestarts unchanged, active",
			before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	b.waitJournal("worker")
}

// testDroverKill: drover killed with SIGKILL is restarted by systemd;
// clients that connect while it is down wait in the socket's backlog and
// are answered by the new drover's workers, none refused.
func testDroverKill(b *box) {
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	oldMain, _ := strconv.Atoi(before["MainPID"])
	ws := b.distinctWorkers(workers)
	old := []int{oldMain}
	for _, w := range ws {
		old = append(old, w.Pid)
	}
	b.sh("kill", "-9", strconv.Itoa(oldMain))
	// RestartSec=1s: the service is down (auto-restart) for a second.
	b.waitFor("systemd to schedule the restart", 10*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "ActiveState", "SubState", "MainPID")
		return st["SubState"] == "auto-restart", fmt.Sprintf("%s/%s MainPID=%s", st["ActiveState"], st["SubState"], st["MainPID"])
	})
	if left := b.alive(old...); len(left) > 0 {
		b.t.Errorf("while restarting, old drover/workers %v are still alive (KillMode=mixed should have killed them)", left)
	}
	const clients = 4
	var wg sync.WaitGroup
	replies := make([]reply, clients)
	errs := make([]error, clients)
	sent := time.Now()
	for i := range clients {
		wg.Go(func() { replies[i], errs[i] = b.get(20 * time.Second) })
	}
	wg.Wait()
	b.t.Logf("%d clients connected while myapp.service was down (sent %v after it was seen in auto-restart):", clients, time.Since(sent).Round(time.Millisecond))
	waited := false
	for i := range clients {
		if errs[i] != nil {
			b.t.Errorf("  client %d: %v", i, errs[i])
			continue
		}
		r := replies[i]
		b.t.Logf("  client %d: connected after %v, answered after %v: %s", i, r.Connected.Round(time.Microsecond), r.Answered.Round(time.Millisecond), strings.TrimSpace(r.Body))
		if slices.Contains(old, r.Pid) {
			b.t.Errorf("  client %d answered by old pid %d", i, r.Pid)
		}
		// Connected at once (systemd's socket), answered once drover was
		// back: the connection waited in the backlog.
		if r.Answered-r.Connected > 300*time.Millisecond {
			waited = true
		}
	}
	if !waited {
		b.t.Errorf("no client waited for the restart: they did not test the backlog")
	}
	// Workers answer from the backlog as soon as they listen, a moment
	// before drover has seen them all ready and systemd marks the unit
	// active.
	b.waitFor("myapp.service to be active again", 10*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "ActiveState", "SubState")
		return st["ActiveState"] == "active", st["ActiveState"] + "/" + st["SubState"]
	})
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	n0, _ := strconv.Atoi(before["NRestarts"])
	n1, _ := strconv.Atoi(after["NRestarts"])
	if n1 != n0+1 || after["MainPID"] == before["MainPID"] || after["ActiveState"] != "active" {
		b.t.Errorf("after killing drover: NRestarts %d->%d (want +1), MainPID %s->%s (want new), %s (want active)", n0, n1, before["MainPID"], after["MainPID"], after["ActiveState"])
	}
	newMain, _ := strconv.Atoi(after["MainPID"])
	if cmd := b.cmdline(newMain); !strings.HasPrefix(cmd, "/usr/bin/drover run") {
		b.t.Errorf("new MainPID %d runs %q, want drover", newMain, cmd)
	}
	b.t.Logf("exit statuses recorded by ExecStopPost= (result code status): %v", b.exits())
	b.waitJournal("status=9/KILL")
}

// testStop: stopping service and socket makes drover drain its workers
// and exit 0; nothing is left to SIGKILL; both units end inactive, not
// failed; the port is closed.
func testStop(b *box) {
	b.startByConnection()
	mainPid := b.mainPid()
	cg := b.showLogged("myapp.service", "ControlGroup")["ControlGroup"]
	ws := b.distinctWorkers(workers)
	pids := []int{mainPid}
	for _, w := range ws {
		pids = append(pids, w.Pid)
	}
	b.sh("systemctl", "stop", "myapp.service", "myapp.socket")
	st := b.showLogged("myapp.service", "ActiveState", "SubState", "Result")
	if st["ActiveState"] != "inactive" || st["Result"] != "success" {
		b.t.Errorf("after stop myapp.service is %s (result %s), want inactive (success)", st["ActiveState"], st["Result"])
	}
	if s := b.showLogged("myapp.socket", "ActiveState")["ActiveState"]; s != "inactive" {
		b.t.Errorf("after stop myapp.socket is %s, want inactive", s)
	}
	exits := b.exits()
	b.t.Logf("exit statuses recorded by ExecStopPost= (result code status): %v", exits)
	if len(exits) != 1 || exits[0] != "success exited 0" {
		b.t.Errorf("drover's exit: %v, want [success exited 0]", exits)
	}
	if left := b.alive(pids...); len(left) > 0 {
		b.t.Errorf("after stop, %v of drover and workers %v are still alive", left, pids)
	}
	if procs, ok := b.cgroupProcs(cg); ok && len(procs) > 0 {
		b.t.Errorf("after stop, cgroup %s still holds %v", cg, procs)
	} else {
		b.t.Logf("cgroup %s: gone or empty (%v)", cg, procs)
	}
	refused, err := dialRefused(b.port)
	b.t.Logf("connect to 127.0.0.1:%d after stop: %v", b.port, err)
	if !refused {
		b.t.Errorf("127.0.0.1:%d still accepts connections after myapp.socket stopped", b.port)
	}
	j := b.waitJournal("Stopped myapp.service")
	if strings.Contains(j, "Killing process") {
		b.t.Errorf("systemd had to SIGKILL something: drover did not drain its workers before exiting")
	}
}

// testNeverReady: a worker that never becomes ready fails the start once
// --ready-timeout passes; systemctl start fails and systemctl status says
// why.
func testNeverReady(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("--ready-timeout 2s", TestworkerPath+" -mode never-ready")))
	b.sh("systemctl", "start", "myapp.socket")
	start := time.Now()
	out, code := b.try("systemctl", "start", "myapp.service")
	took := time.Since(start)
	if code == 0 {
		b.t.Fatalf("systemctl start myapp.service succeeded with a never-ready worker")
	}
	if took < 2*time.Second || took > 10*time.Second {
		b.t.Errorf("systemctl start failed after %v, want shortly after --ready-timeout 2s", took)
	}
	if !strings.Contains(out, "failed") {
		b.t.Errorf("systemctl start said %q, want it to say the job failed", out)
	}
	status, _ := b.try("systemctl", "status", "--no-pager", "myapp.service")
	line := statusLine(status)
	if !strings.Contains(line, "ready") || !strings.Contains(line, "2s") {
		b.t.Errorf("systemctl status shows Status: %q, want the reason (not ready within 2s)", line)
	}
	st := b.showLogged("myapp.service", "Result", "ExecMainStatus")
	if st["Result"] != "exit-code" || st["ExecMainStatus"] == "0" {
		b.t.Errorf("Result=%s ExecMainStatus=%s, want drover to have exited non-zero", st["Result"], st["ExecMainStatus"])
	}
	b.waitJournal("ready")
}

// testMissingBinary: a worker command that does not exist fails the start
// at once, with drover's one-line reason in the journal and in systemctl
// status.
func testMissingBinary(b *box) {
	const missing = "/usr/bin/does-not-exist"
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", missing)))
	b.sh("systemctl", "start", "myapp.socket")
	start := time.Now()
	_, code := b.try("systemctl", "start", "myapp.service")
	took := time.Since(start)
	if code == 0 {
		b.t.Fatalf("systemctl start myapp.service succeeded with a missing worker binary")
	}
	if took > 2*time.Second {
		b.t.Errorf("the start failed after %v, want at once", took)
	}
	b.showLogged("myapp.service", "ActiveState", "SubState", "Result", "ExecMainStatus", "StatusText")
	j := b.waitJournal(missing)
	m := regexp.MustCompile(`drover\[(\d+)\]: (.*)`).FindStringSubmatch(j)
	if m == nil {
		b.t.Fatalf("no line from drover in the journal")
	}
	if n := strings.Count(j, "drover["+m[1]+"]:"); n != 1 {
		b.t.Errorf("drover[%s] wrote %d lines, want one", m[1], n)
	}
	b.t.Logf("drover's message: %s", m[2])
	// systemctl status lists only log lines since the unit last left
	// "inactive"; Restart= schedules a new attempt right away (state
	// activating/auto-restart), which hides the failed attempt's lines.
	// What stays is STATUS=, as for a never-ready worker.
	status, _ := b.try("systemctl", "status", "--no-pager", "myapp.service")
	// (The ExecStart= line names the path too; the reason is what counts.)
	inLog := regexp.MustCompile(`drover\[\d+\]: .*` + regexp.QuoteMeta(missing)).MatchString(status)
	if !inLog && !strings.Contains(statusLine(status), missing) {
		b.t.Errorf("systemctl status does not say what is wrong with %s: drover's reason is only in the journal (journalctl -u myapp); "+
			"it should also go out as STATUS= before drover exits, as it does when a worker is never ready", missing)
	}
}

// testWatchdog: with WatchdogSec=, drover pings from its event loop; when
// the loop is stuck (test hook), systemd kills and restarts it.
func testWatchdog(b *box) {
	b.dropIn("myapp.service", `[Service]
WatchdogSec=2s
Environment=DROVER_TEST_HOOKS=stall-on-sigusr2
`)
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts", "WatchdogUSec")
	if before["WatchdogUSec"] != "2s" {
		b.t.Fatalf("WatchdogUSec=%s, want 2s", before["WatchdogUSec"])
	}
	// Each WATCHDOG=1 moves WatchdogTimestamp: see two pings.
	first := b.show("myapp.service", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
	pings := map[string]bool{first: true}
	b.waitFor("two watchdog pings", 5*time.Second, func() (bool, string) {
		pings[b.show("myapp.service", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]] = true
		return len(pings) >= 3, fmt.Sprintf("%d distinct WatchdogTimestampMonotonic values", len(pings))
	})
	b.sh("kill", "-USR2", before["MainPID"])
	b.waitFor("systemd to kill and restart drover", 15*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "MainPID", "ActiveState", "SubState")
		return st["MainPID"] != before["MainPID"] && st["MainPID"] != "0" && st["ActiveState"] == "active",
			fmt.Sprintf("MainPID=%s %s/%s", st["MainPID"], st["ActiveState"], st["SubState"])
	})
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	n0, _ := strconv.Atoi(before["NRestarts"])
	n1, _ := strconv.Atoi(after["NRestarts"])
	if n1 != n0+1 {
		b.t.Errorf("NRestarts %d->%d, want one restart", n0, n1)
	}
	b.t.Logf("exit statuses recorded by ExecStopPost= (result code status): %v", b.exits())
	b.waitJournal("Watchdog timeout", "Failed with result 'watchdog'")
	b.getLogged(10 * time.Second)
}
