package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The operator commands (issue 6 §5) against the real systemd: drover
// status, scale and init, run inside the container as an operator would.

// droverStatus is what drover status --json prints, decoded with the field
// names the README documents as stable (fields may be added, so unknown
// ones are ignored).
type droverStatus struct {
	Unit *struct {
		Name        string `json:"name"`
		LoadState   string `json:"load_state"`
		ActiveState string `json:"active_state"`
		SubState    string `json:"sub_state"`
		MainPID     int    `json:"main_pid"`
		StatusText  string `json:"status_text"`
		NRestarts   int    `json:"n_restarts"`
	} `json:"unit"`
	Drover *struct {
		Pid          int       `json:"pid"`
		Version      string    `json:"version"`
		Upgraded     time.Time `json:"upgraded"`
		UpgradedFrom string    `json:"upgraded_from"`
		State        string    `json:"state"`
		StatusText   string    `json:"status_text"`
		Generation   int       `json:"generation"`
		Workers      int       `json:"workers"`
		Ready        int       `json:"ready"`
		Restarts     int       `json:"restarts"`
		Recycles     int       `json:"recycles"`
		Reloads      int       `json:"reloads"`
		Processes    []struct {
			Slot        int       `json:"slot"`
			Pid         int       `json:"pid"`
			Generation  int       `json:"generation"`
			State       string    `json:"state"`
			Started     time.Time `json:"started"`
			Restarts    int       `json:"restarts"`
			CPUPercent  float64   `json:"cpu_percent"`
			RSSBytes    int64     `json:"rss_bytes"`
			Status      string    `json:"status"`
			Recycles    int       `json:"recycles"`
			LastRecycle string    `json:"last_recycle"`
			MemoryBytes int64     `json:"memory_bytes"`
			LastPing    time.Time `json:"last_ping"`
		} `json:"processes"`
	} `json:"drover"`
}

// String is a one-line summary, for waitFor's log.
func (s droverStatus) String() string {
	var b strings.Builder
	if s.Unit != nil {
		fmt.Fprintf(&b, "unit %s/%s main_pid %d %q", s.Unit.ActiveState, s.Unit.SubState, s.Unit.MainPID, s.Unit.StatusText)
	}
	if d := s.Drover; d != nil {
		fmt.Fprintf(&b, "; drover %s, %d/%d ready, generation %d, %d restarts; processes", d.State, d.Ready, d.Workers, d.Generation, d.Restarts)
		for _, p := range d.Processes {
			fmt.Fprintf(&b, " [slot %d pid %d gen %d %s restarts %d]", p.Slot, p.Pid, p.Generation, p.State, p.Restarts)
		}
	}
	return b.String()
}

// pids returns the pids of the processes in state (any state if "").
func (s droverStatus) pids(state string) []int {
	var pids []int
	if s.Drover == nil {
		return nil
	}
	for _, p := range s.Drover.Processes {
		if state == "" || p.State == state {
			pids = append(pids, p.Pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// run3 runs a command inside with stdout and stderr apart, as a script
// reading drover's output would, and returns both with the exit code.
func (b *box) run3(args ...string) (stdout, stderr string, code int) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	cmd := b.m.Command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code, exited := ErrExit(err)
	if err != nil && !exited {
		b.t.Fatalf("$ %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), code
}

// statusJSON runs drover status --json UNIT inside, without logging, and
// decodes it; it fails the test unless drover exits with want.
func (b *box) statusJSON(unit string, want int) (droverStatus, string) {
	b.t.Helper()
	out, errOut, code := b.run3("/usr/bin/drover", "status", "--json", unit)
	if code != want {
		b.t.Fatalf("$ drover status --json %s: exit %d, want %d\n%s%s", unit, code, want, out, errOut)
	}
	var st droverStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		b.t.Fatalf("$ drover status --json %s: %v\n%s", unit, err, out)
	}
	return st, out
}

// statusText runs drover status UNIT inside, logged, and fails the test
// unless it exits with want.
func (b *box) statusText(unit string, want int) string {
	b.t.Helper()
	out, code := b.try("/usr/bin/drover", "status", unit)
	if code != want {
		b.t.Fatalf("drover status %s: exit %d, want %d", unit, code, want)
	}
	return out
}

// statusRow is one line of drover status's worker table.
type statusRow struct {
	slot, pid, gen   string
	state, restarts  string
	uptime, cpu, rss string
}

// statusRows parses drover status's worker table (the lines after the
// SLOT header).
func statusRows(text string) []statusRow {
	var rows []statusRow
	inTable := false
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "SLOT" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 8 {
			continue
		}
		rows = append(rows, statusRow{slot: f[0], pid: f[1], gen: f[2], state: f[3], uptime: f[4], restarts: f[5], cpu: f[6], rss: f[7]})
	}
	return rows
}

// waitStatus polls drover status --json until done says so; the log has
// the last one in short (waitFor's), with logJSON in full.
func (b *box) waitStatus(what string, unit string, timeout time.Duration, logJSON bool, done func(droverStatus) bool) droverStatus {
	b.t.Helper()
	var st droverStatus
	var raw string
	b.waitFor(what, timeout, func() (bool, string) {
		st, raw = b.statusJSON(unit, 0)
		return done(st), st.String()
	})
	if logJSON {
		b.t.Logf("$ drover status --json %s\n%s", unit, strings.TrimRight(raw, "\n"))
	}
	return st
}

// testStatus: drover status shows the unit (over D-Bus) and the workers
// (over the control socket) after start, after a worker's crash, during a
// reload; refuses users other than root and the service's; says when there
// is no such unit (exit 1) and when it is not running (exit 3).
func testStatus(b *box) {
	// Workers ready 3s after they start: a reload is slow enough to be
	// watched.
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("--ready delay=3s", "")))
	b.startByConnection()
	mainPid := b.mainPid()
	ws := b.distinctWorkers(workers)
	var answering []int
	for _, w := range ws {
		answering = append(answering, w.Pid)
	}
	slices.Sort(answering)

	// After start: the text.
	text := b.statusText("myapp", 0)
	if first := firstLine(text); !strings.HasPrefix(first, "myapp.service  active (running) since ") {
		b.t.Errorf("first line %q, want myapp.service active (running) since ...", first)
	}
	if want := fmt.Sprintf("main pid %d · 0 restarts by systemd", mainPid); !strings.Contains(text, want) {
		b.t.Errorf("drover status does not say %q", want)
	}
	if want := "status: " + allReady + " · generation 1 · 0 restarts"; !strings.Contains(text, want) {
		b.t.Errorf("drover status does not show drover's STATUS line %q", want)
	}
	rows := statusRows(text)
	var rowPids []int
	for _, r := range rows {
		if r.state != "ready" || r.gen != "1" || r.restarts != "0" {
			b.t.Errorf("worker row %+v, want ready, generation 1, 0 restarts", r)
		}
		pid, _ := strconv.Atoi(r.pid)
		rowPids = append(rowPids, pid)
	}
	slices.Sort(rowPids)
	if !slices.Equal(rowPids, answering) {
		b.t.Errorf("drover status lists workers %v, the port is answered by %v", rowPids, answering)
	}

	// After start: the JSON agrees, with systemd and with the port.
	st, raw := b.statusJSON("myapp", 0)
	b.t.Logf("$ drover status --json myapp\n%s", strings.TrimRight(raw, "\n"))
	show := b.showLogged("myapp.service", "MainPID", "StatusText")
	switch {
	case st.Unit == nil || st.Drover == nil:
		b.t.Fatalf("drover status --json has no unit or no drover: %s", raw)
	case st.Unit.ActiveState != "active":
		b.t.Errorf("unit.active_state %q, want active", st.Unit.ActiveState)
	case strconv.Itoa(st.Unit.MainPID) != show["MainPID"] || st.Drover.Pid != mainPid:
		b.t.Errorf("unit.main_pid %d, drover.pid %d; systemctl show says MainPID=%s", st.Unit.MainPID, st.Drover.Pid, show["MainPID"])
	case st.Unit.StatusText != show["StatusText"]:
		b.t.Errorf("unit.status_text %q, systemctl show says %q", st.Unit.StatusText, show["StatusText"])
	case st.Drover.Workers != workers || st.Drover.Ready != workers || st.Drover.State != "serving":
		b.t.Errorf("drover: workers %d, ready %d, state %s; want %d, %d, serving", st.Drover.Workers, st.Drover.Ready, st.Drover.State, workers, workers)
	}
	if got := st.pids("ready"); !slices.Equal(got, answering) || len(st.Drover.Processes) != workers {
		b.t.Errorf("processes %v (ready: %v), the port is answered by %v", st.pids(""), got, answering)
	}
	for _, p := range st.Drover.Processes {
		if p.RSSBytes == 0 || p.Started.IsZero() {
			b.t.Errorf("process %d: rss_bytes %d, started %v: want both measured", p.Pid, p.RSSBytes, p.Started)
		}
	}

	// A worker killed: status shows its replacement.
	victim := ws[0]
	slot, _ := strconv.Atoi(victim.Worker)
	b.sh("kill", "-9", strconv.Itoa(victim.Pid))
	st = b.waitStatus(fmt.Sprintf("drover status to show a new ready worker in slot %d", slot), "myapp", 20*time.Second, true, func(st droverStatus) bool {
		for _, p := range st.Drover.Processes {
			if p.Slot == slot && p.Pid != victim.Pid && p.State == "ready" {
				return st.Drover.Ready == workers
			}
		}
		return false
	})
	if st.Drover.Restarts != 1 {
		b.t.Errorf("drover.restarts %d after one worker's death, want 1", st.Drover.Restarts)
	}
	var replacement int
	for _, p := range st.Drover.Processes {
		want := 0
		if p.Slot == slot {
			want, replacement = 1, p.Pid
		}
		if p.Restarts != want {
			b.t.Errorf("slot %d: restarts %d, want %d", p.Slot, p.Restarts, want)
		}
	}
	text = b.statusText("myapp", 0)
	if !strings.Contains(text, "· 1 restarts") {
		b.t.Errorf("drover's STATUS line does not count the restart")
	}
	found := false
	for _, r := range statusRows(text) {
		if r.slot == victim.Worker {
			found = r.pid == strconv.Itoa(replacement) && r.restarts == "1" && r.state == "ready"
		}
	}
	if !found {
		b.t.Errorf("the table does not show slot %d's replacement %d, ready, 1 restart", slot, replacement)
	}

	// Anyone but root and the service's user: the unit, not the workers.
	out, code := b.try("runuser", "-u", "nobody", "--", "/usr/bin/drover", "status", "myapp")
	if code != 1 || !strings.HasPrefix(out, "myapp.service  active (running)") && !strings.Contains(out, "\nmyapp.service  active (running)") {
		b.t.Errorf("as nobody: exit %d, want 1 with the unit shown", code)
	}
	if !strings.Contains(out, "permission denied") || !strings.Contains(out, "run as root or as the service's user") {
		b.t.Errorf("as nobody: no permission message")
	}
	if strings.Contains(out, "SLOT") {
		b.t.Errorf("as nobody: the worker table was shown")
	}

	// No such unit.
	out, code = b.try("/usr/bin/drover", "status", "nosuch")
	if code != 1 || !strings.Contains(out, "no such unit") {
		b.t.Errorf("drover status nosuch: exit %d, want 1 with \"no such unit\"", code)
	}

	// During a reload: the new worker starting next to the old, ready ones.
	mainBefore := b.show("myapp.service", "MainPID")["MainPID"]
	type result struct {
		out  string
		err  error
		took time.Duration
	}
	reloaded := make(chan result, 1)
	go func() {
		start := time.Now()
		out, err := b.m.Output(b.ctx, "systemctl", "reload", "myapp")
		reloaded <- result{out, err, time.Since(start)}
	}()
	st = b.waitStatus("drover status to show the reload with a starting worker of generation 2", "myapp", 10*time.Second, true, func(st droverStatus) bool {
		starting, oldReady := false, 0
		for _, p := range st.Drover.Processes {
			if p.Generation == 2 && p.State == "starting" {
				starting = true
			}
			if p.Generation == 1 && p.State == "ready" {
				oldReady++
			}
		}
		return st.Drover.State == "reloading" && starting && oldReady == workers
	})
	text = b.statusText("myapp", 0)
	if !strings.HasPrefix(text, "myapp.service  reloading") || !strings.Contains(text, "status: reloading") {
		b.t.Errorf("during the reload, drover status does not say reloading")
	}
	var sawStarting, sawReady bool
	for _, r := range statusRows(text) {
		sawStarting = sawStarting || r.gen == "2" && r.state == "starting"
		sawReady = sawReady || r.gen == "1" && r.state == "ready"
	}
	if !sawStarting || !sawReady {
		b.t.Errorf("during the reload, the table shows no starting worker of generation 2 next to ready ones of generation 1")
	}
	var res result
	select {
	case res = <-reloaded:
	case <-time.After(30 * time.Second):
		b.t.Fatalf("systemctl reload myapp did not return in 30s")
	}
	b.t.Logf("$ systemctl reload myapp (took %v)\n%s", res.took.Round(time.Millisecond), res.out)
	if res.err != nil {
		b.t.Fatalf("systemctl reload myapp: %v", res.err)
	}
	st = b.waitStatus("drover status to show generation 2 serving, the old workers gone", "myapp", 20*time.Second, true, func(st droverStatus) bool {
		return st.Drover.State == "serving" && st.Drover.Generation == 2 && st.Drover.Ready == workers &&
			len(st.Drover.Processes) == workers && len(st.pids("ready")) == workers
	})
	if strconv.Itoa(st.Drover.Pid) != mainBefore || st.Drover.Reloads != 1 {
		b.t.Errorf("after the reload: drover pid %d (was %s), reloads %d (want 1)", st.Drover.Pid, mainBefore, st.Drover.Reloads)
	}

	// Not running: exit 3, as systemctl status.
	b.sh("systemctl", "stop", "myapp.service")
	out, code = b.try("/usr/bin/drover", "status", "myapp")
	if code != exitNotRunning || !strings.HasPrefix(out, "myapp.service  inactive (dead)") {
		b.t.Errorf("drover status after stop: exit %d, want %d with the unit inactive", code, exitNotRunning)
	}
	st, raw = b.statusJSON("myapp", exitNotRunning)
	b.t.Logf("$ drover status --json myapp (exit %d)\n%s", exitNotRunning, strings.TrimRight(raw, "\n"))
	if st.Unit == nil || st.Unit.ActiveState != "inactive" || st.Drover != nil {
		b.t.Errorf("drover status --json after stop: %v, want the unit inactive and no drover", st)
	}
}

// exitNotRunning is drover status's exit code for a unit that is not
// running (as systemctl status).
const exitNotRunning = 3

// testScale: under load, drover scale +2 then -3 takes myapp from 2 to 4
// to 1 worker, gated on readiness and drained, losing no request; drover's
// STATUS line follows; a reload afterwards keeps 1 worker.
func testScale(b *box) {
	b.startByConnection()
	mainPid := b.mainPid()
	b.distinctWorkers(workers)

	ld := startLoad(b.port, "warm-up, 2 workers")
	b.t.Cleanup(ld.Stop)
	b.t.Logf("load: keep-alive client as fast as answered, new-conn client every %v at most; bounded by %d/%d requests and %v", loadNewConnEvery, loadMaxKeepAlive, loadMaxNewConn, loadMaxDuration)
	b.waitLoad(ld, 50)

	// scaled waits until drover runs exactly n ready workers of generation
	// gen, no others (drained ones have exited), systemd shows the STATUS
	// line for n, and the load got through meanwhile.
	scaled := func(n, gen int) droverStatus {
		b.t.Helper()
		st := b.waitStatus(fmt.Sprintf("drover status to show %d ready workers of generation %d and nothing else", n, gen), "myapp", 20*time.Second, false, func(st droverStatus) bool {
			if st.Drover.State != "serving" || st.Drover.Workers != n || st.Drover.Ready != n || len(st.Drover.Processes) != n {
				return false
			}
			for _, p := range st.Drover.Processes {
				if p.State != "ready" || p.Generation != gen {
					return false
				}
			}
			return true
		})
		b.waitFor(fmt.Sprintf("drover to have exactly %d children", n), 20*time.Second, func() (bool, string) {
			kids := b.children(mainPid)
			slices.Sort(kids)
			return slices.Equal(kids, st.pids("ready")), fmt.Sprintf("children %v, drover status lists %v", kids, st.pids(""))
		})
		want := fmt.Sprintf("%d/%d workers ready · generation %d", n, n, gen)
		b.waitFor(fmt.Sprintf("systemd's StatusText to say %q", want), 10*time.Second, func() (bool, string) {
			s := b.show("myapp.service", "StatusText")["StatusText"]
			return strings.HasPrefix(s, want), s
		})
		b.statusText("myapp", 0)
		b.waitLoad(ld, 50)
		return st
	}

	phaseUp := ld.Next("drover scale myapp +2, until 4 workers serve") + 1
	out := b.sh("/usr/bin/drover", "scale", "myapp", "+2")
	if !strings.Contains(out, "scaling to 4 workers") {
		b.t.Errorf("drover scale +2 said %q, want scaling to 4 workers", out)
	}
	up := scaled(4, 1)
	for _, p := range up.Drover.Processes {
		if p.Slot >= 4 {
			b.t.Errorf("after scaling to 4, slot %d exists", p.Slot)
		}
	}

	phaseDown := ld.Next("drover scale myapp -3, until 1 worker serves and the others drained") + 1
	out = b.sh("/usr/bin/drover", "scale", "myapp", "-3")
	if !strings.Contains(out, "scaling to 1 workers") {
		b.t.Errorf("drover scale -3 said %q, want scaling to 1 workers", out)
	}
	down := scaled(1, 1)
	if down.Drover.Processes[0].Slot != 0 {
		b.t.Errorf("after scaling to 1, slot %d is left; want slot 0 (the highest go first)", down.Drover.Processes[0].Slot)
	}

	phaseReload := ld.Next("systemctl reload myapp, with 1 worker") + 1
	b.sh("systemctl", "reload", "myapp")
	scaled(1, 2)
	b.endLoad(ld)

	var lines []string
	total := [2]clientStats{}
	for i := 0; i <= phaseReload; i++ {
		p := ld.Phase(i)
		lines = append(lines, p.name+":")
		for c, name := range clientNames {
			lines = append(lines, fmt.Sprintf("  %-10s %s", name, p.clients[c]))
			total[c].ok += p.clients[c].ok
			total[c].failed += p.clients[c].failed
			total[c].connErrs += p.clients[c].connErrs
			if p.clients[c].failed+p.clients[c].connErrs > 0 {
				b.t.Errorf("%s: %s client: %d failed requests, %d connection errors (%s)", p.name, name, p.clients[c].failed, p.clients[c].connErrs, countList(p.clients[c].errs))
			}
		}
	}
	for c, name := range clientNames {
		lines = append(lines, fmt.Sprintf("in all: %-10s %d ok, %d failed, %d connection errors", name, total[c].ok, total[c].failed, total[c].connErrs))
	}
	b.t.Logf("requests per phase:\n%s", strings.Join(lines, "\n"))
	for _, i := range []int{phaseUp, phaseDown, phaseReload} {
		if p := ld.Phase(i); p.clients[keepAlive].ok == 0 || p.clients[newConn].ok == 0 {
			b.t.Errorf("%s: a client got no answer at all", p.name)
		}
	}
	b.waitJournal("scaled to 4 workers", "scaled to 1 workers", "reload done")
}

// reloadingRE matches PID 1's line that starts a reload of its
// configuration: "Reloading." (252), "Reloading..." (257).
var reloadingRE = regexp.MustCompile(`(?m)systemd\[1\]: Reloading\.+$`)

// initUnitDir is where drover init --install writes by default.
const initUnitDir = "/etc/systemd/system"

// removeAtEnd stops and removes units drover init wrote into initUnitDir
// when the scenario ends (the service first), after logging their state
// and journal if it failed.
func (b *box) removeAtEnd(units ...string) {
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.m.Output(ctx, append([]string{"systemctl", "stop"}, units...)...); err != nil {
			b.m.Output(ctx, "systemctl", "kill", "--signal=SIGKILL", units[0])
			b.m.Output(ctx, append([]string{"systemctl", "stop"}, units...)...)
		}
		var files []string
		for _, u := range units {
			files = append(files, initUnitDir+"/"+u)
		}
		b.m.Output(ctx, append([]string{"rm", "-f"}, files...)...)
		left, _ := b.m.Output(ctx, append([]string{"sh", "-c", `for f; do test -e "$f" && echo "$f"; done; true`, "sh"}, files...)...)
		if out := strings.TrimSpace(left); out != "" {
			b.t.Errorf("cleanup: drover init's units are still in %s, for the next scenarios to find: %s", initUnitDir, out)
		}
		b.m.Output(ctx, "systemctl", "daemon-reload")
		b.m.Output(ctx, append([]string{"systemctl", "reset-failed"}, units...)...)
	})
	// Runs before the cleanup above (cleanups run last registered first).
	b.t.Cleanup(func() {
		if !b.t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, _ := b.m.Output(ctx, append([]string{"systemctl", "status", "--no-pager", "-n", "0"}, units...)...)
		b.t.Logf("on failure: $ systemctl status %s\n%s", strings.Join(units, " "), out)
		args := []string{"journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor=" + b.cursor}
		for _, u := range units {
			args = append(args, "-u", u)
		}
		j, _ := b.m.Output(ctx, args...)
		b.t.Logf("on failure: journal of %s:\n%s", strings.Join(units, " "), trimGoDump(j))
	})
}

// testInit: drover init --install writes NAME.socket and NAME.service to
// /etc/systemd/system and makes systemd load them over D-Bus, without a
// daemon-reload of ours; the socket, once started, is served by drover's
// workers; stopping is clean; a second init without --force changes
// nothing. The container's /etc is its overlay, which outlives the
// scenario (reset only knows myapp's units): the scenario removes its
// units itself, on failure too.
func testInit(b *box) {
	const name = "web"
	socketFile, serviceFile := initUnitDir+"/"+name+".socket", initUnitDir+"/"+name+".service"
	port, err := FreePort()
	if err != nil {
		b.t.Fatal(err)
	}
	b.removeAtEnd(name+".service", name+".socket")
	for _, f := range []string{socketFile, serviceFile} {
		if _, err := b.quiet("test", "!", "-e", f); err != nil {
			b.t.Fatalf("%s exists before drover init", f)
		}
	}

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	out, code := b.try("/usr/bin/drover", "init", name, "--listen", addr, "--install", "--", MyappPath)
	if code != 0 {
		b.t.Fatalf("drover init --install exited %d", code)
	}
	for _, f := range []string{socketFile, serviceFile} {
		if !strings.Contains(out, "wrote "+f) {
			b.t.Errorf("drover init did not say it wrote %s", f)
		}
	}
	socket := b.sh("cat", socketFile)
	service := b.sh("cat", serviceFile)
	if !strings.Contains(socket, "\nListenStream="+addr+"\n") || strings.Count(socket, "\nListenStream=") != 1 {
		b.t.Errorf("%s does not listen on exactly %s", socketFile, addr)
	}
	if !strings.Contains(service, "\nExecStart=/usr/bin/drover run -- "+MyappPath+"\n") ||
		!strings.Contains(service, "\nRuntimeDirectory="+name+"\n") ||
		!strings.Contains(service, "\nRequires="+name+".socket\n") {
		b.t.Errorf("%s lacks ExecStart= of drover with %s, RuntimeDirectory=%s or Requires=%s.socket", serviceFile, MyappPath, name, name)
	}
	// No daemon-reload of ours: drover init asked systemd over D-Bus. (A
	// unit never loaded before would be read from disk on first use even
	// without one: systemd's journal is the proof.) The scenario's journal
	// starts after reset's daemon-reload, so any reload in it is drover
	// init's; 257 also names the client, 252 does not.
	var reloads string
	b.waitFor("systemd to log a reload of its configuration", 10*time.Second, func() (bool, string) {
		reloads, _ = b.quiet("journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor="+b.cursor, "_PID=1", "--grep", "^Reload")
		return strings.Contains(reloads, "Reloading"), strconv.Quote(reloads)
	})
	b.t.Logf("$ journalctl _PID=1 --grep ^Reload (this scenario)\n%s", strings.TrimRight(reloads, "\n"))
	if n := len(reloadingRE.FindAllString(reloads, -1)); n != 1 {
		b.t.Errorf("systemd reloaded %d times during drover init, want once", n)
	}
	if b.m.Distro.Systemd >= 257 && !strings.Contains(reloads, "('drover')") {
		b.t.Errorf("systemd %d does not say drover asked for the reload", b.m.Distro.Systemd)
	}
	for _, unit := range []string{name + ".socket", name + ".service"} {
		st := b.showLogged(unit, "LoadState", "FragmentPath", "NeedDaemonReload")
		if st["LoadState"] != "loaded" || st["FragmentPath"] != initUnitDir+"/"+unit || st["NeedDaemonReload"] != "no" {
			b.t.Errorf("%s: LoadState=%s FragmentPath=%s NeedDaemonReload=%s; want loaded from %s/%s, current",
				unit, st["LoadState"], st["FragmentPath"], st["NeedDaemonReload"], initUnitDir, unit)
		}
	}
	b.try("systemd-analyze", "verify", name+".socket", name+".service")

	b.sh("systemctl", "start", name+".socket")
	// One connection, which starts web.service and waits in the socket's
	// backlog until a worker answers. (Retrying would start a broken
	// service again and again, into systemd's start limit.)
	start := time.Now()
	r, err := b.getAddr(addr, 30*time.Second)
	if err != nil {
		b.t.Fatalf("GET http://%s/: %v", addr, err)
	}
	b.t.Logf("GET http://%s/ -> %s (answered after %v)", addr, strings.TrimSpace(r.Body), time.Since(start).Round(time.Millisecond))
	if r.Version != b.build.Version || r.Generation != "1" {
		b.t.Errorf("answered by %q, want this build's example-worker, generation 1", r.Body)
	}
	b.waitFor(name+".service to be active", 30*time.Second, func() (bool, string) {
		st := b.show(name+".service", "ActiveState", "StatusText")
		return st["ActiveState"] == "active", fmt.Sprintf("ActiveState=%s StatusText=%q", st["ActiveState"], st["StatusText"])
	})
	mainPid, _ := strconv.Atoi(b.showLogged(name+".service", "MainPID", "StatusText")["MainPID"])
	st, raw := b.statusJSON(name, 0)
	b.t.Logf("$ drover status --json %s\n%s", name, strings.TrimRight(raw, "\n"))
	if st.Drover == nil || st.Drover.Pid != mainPid || st.Drover.Ready != st.Drover.Workers || st.Drover.Workers < 1 {
		b.t.Errorf("drover status %s: %v; want drover %d with every worker ready", name, st, mainPid)
	} else if !slices.Contains(st.pids("ready"), r.Pid) {
		b.t.Errorf("the answer came from pid %d, not one of drover's ready workers %v", r.Pid, st.pids("ready"))
	}
	b.statusText(name, 0)

	b.sh("systemctl", "stop", name+".service", name+".socket")
	for _, unit := range []string{name + ".service", name + ".socket"} {
		st := b.showLogged(unit, "ActiveState", "Result")
		if st["ActiveState"] != "inactive" || st["Result"] != "success" {
			b.t.Errorf("after stop %s is %s (result %s), want inactive (success)", unit, st["ActiveState"], st["Result"])
		}
	}
	if left := b.alive(mainPid); len(left) > 0 {
		b.t.Errorf("drover %d is still alive after the stop", mainPid)
	}
	if refused, err := dialRefused(port); !refused {
		b.t.Errorf("%s still accepts connections after %s.socket stopped (%v)", addr, name, err)
	}
	j, _ := b.quiet("journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor="+b.cursor, "-u", name+".service", "-u", name+".socket")
	b.t.Logf("$ journalctl -u %s.service -u %s.socket (this scenario)\n%s", name, name, strings.TrimRight(j, "\n"))
	if strings.Contains(j, "Killing process") || strings.Contains(j, "Failed with result") {
		b.t.Errorf("the stop was not clean: systemd killed something or a unit failed")
	}

	// Again without --force: refused, the files untouched.
	stat := func() string {
		out, _ := b.quiet("sh", "-c", `stat -c '%n %i %s %Y' "$@" && sha256sum "$@"`, "sh", socketFile, serviceFile)
		return out
	}
	before := stat()
	other, err := FreePort()
	if err != nil {
		b.t.Fatal(err)
	}
	out, code = b.try("/usr/bin/drover", "init", name, "--listen", fmt.Sprintf("127.0.0.1:%d", other), "--install", "--", MyappPath)
	if code == 0 || !strings.Contains(out, "--force") {
		b.t.Errorf("drover init over existing units: exit %d, want non-zero, pointing at --force", code)
	}
	after := stat()
	b.t.Logf("$ stat, sha256sum of the units, before and after\n%s%s", before, after)
	if before != after {
		b.t.Errorf("the refused drover init changed the units")
	}
	if out, _ := b.quiet("ls", "-a", initUnitDir); strings.Contains(out, ".drover-new") {
		b.t.Errorf("drover init left a temporary file in %s:\n%s", initUnitDir, out)
	}
}
