package lab

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// install puts host file src at /usr/bin/myapp inside, by copy and rename
// as a package manager does, and logs it.
func (b *box) install(src, what string) {
	b.t.Helper()
	if err := b.m.InstallFile(src, MyappPath); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("installed %s (%s) as %s: written next to it, renamed over it", filepath.Base(src), what, MyappPath)
}

// children lists drover's child processes (its workers, old and new).
func (b *box) children(mainPid int) []int {
	out, _ := b.quiet("pgrep", "-P", strconv.Itoa(mainPid))
	var pids []int
	for f := range strings.FieldsSeq(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitDrained waits until drover has exactly its workers as children:
// the old generation has drained and exited.
func (b *box) waitDrained(mainPid int) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("the old workers to drain and exit (drover %d back to %d children)", mainPid, workers), 20*time.Second, func() (bool, string) {
		kids := b.children(mainPid)
		return len(kids) == workers, fmt.Sprintf("children %v", kids)
	})
}

// waitReplaced waits until drover has as many children as old and none of
// them: every old worker has drained and exited, replaced by a new one.
func (b *box) waitReplaced(mainPid int, old []int, timeout time.Duration) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("the old workers to drain (drover %d back to %d new children)", mainPid, len(old)), timeout, func() (bool, string) {
		now := b.children(mainPid)
		return len(now) == len(old) && !slices.ContainsFunc(now, func(pid int) bool { return slices.Contains(old, pid) }), fmt.Sprintf("children %v", now)
	})
}

// waitLoad waits until both clients of ld got at least n answers in the
// current phase; it fails the test if the run ended.
// endLoad stops the load and fails the test if it had ended by itself
// (a bound reached, or the server gone) before.
func (b *box) endLoad(ld *Load) {
	b.t.Helper()
	ld.Stop()
	if _, why := ld.Ended(); why != "stopped" {
		b.t.Errorf("the load generator ended by itself (%s) before the test stopped it", why)
	}
}

func (b *box) waitLoad(ld *Load, n int) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%d answers to each client", n), 20*time.Second, func() (bool, string) {
		if ended, why := ld.Ended(); ended {
			b.t.Fatalf("the load generator ended early: %s", why)
		}
		p := ld.Phase(ld.Current())
		return p.clients[keepAlive].ok >= n && p.clients[newConn].ok >= n,
			fmt.Sprintf("keep-alive %d ok, new-conn %d ok", p.clients[keepAlive].ok, p.clients[newConn].ok)
	})
}

// generationWorkers sends requests on new connections until n distinct
// workers of generation gen answered (older ones may answer meanwhile:
// they drain). Any failed request fails the test.
func (b *box) generationWorkers(gen string, n int) []reply {
	b.t.Helper()
	seen := map[int]reply{}
	requests := 0
	b.waitFor(fmt.Sprintf("%d workers of generation %s to answer", n, gen), 15*time.Second, func() (bool, string) {
		for range 4 {
			r, err := b.get(5 * time.Second)
			requests++
			if err != nil {
				b.t.Fatalf("request to 127.0.0.1:%d failed: %v", b.port, err)
			}
			if r.Generation == gen {
				seen[r.Pid] = r
			}
		}
		return len(seen) >= n, fmt.Sprintf("%d distinct pids of generation %s in %d requests", len(seen), gen, requests)
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
		b.t.Fatalf("%d workers of generation %s answered, want exactly %d", len(out), gen, n)
	}
	return out
}

// testReloadUnderLoad (issue 4 §5): two clients, one on a keep-alive
// connection and one opening a connection per request, run through five
// `systemctl reload myapp`, each after a new build was installed as
// /usr/bin/myapp: every reload succeeds, no request fails, afterwards only
// the last version answers, and drover was never restarted. Then a broken
// build: the reload fails visibly, no request fails, the last good version
// keeps serving, and systemctl status says why.
func testReloadUnderLoad(b *box) {
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	mainPid, _ := strconv.Atoi(before["MainPID"])
	for _, r := range b.distinctWorkers(workers) {
		if r.Version != b.build.Version || r.Generation != "1" {
			b.t.Fatalf("before any reload, %s answered", strings.TrimSpace(r.Body))
		}
	}

	ld := startLoad(b.port, "warm-up, before the first reload")
	b.t.Cleanup(ld.Stop)
	b.t.Logf("load: keep-alive client as fast as answered, new-conn client every %v at most; bounded by %d/%d requests and %v", loadNewConnEvery, loadMaxKeepAlive, loadMaxNewConn, loadMaxDuration)
	b.waitLoad(ld, 50)

	type reloadRun struct {
		phase int
		took  time.Duration
		code  int
	}
	var runs []reloadRun
	gen := 1
	for i, path := range b.build.Upgrades {
		b.install(path, "main.version="+UpgradeVersion(i))
		phase := ld.Next(fmt.Sprintf("reload %d, to %s", i+1, UpgradeVersion(i)))
		start := time.Now()
		_, code := b.try("systemctl", "reload", "myapp")
		runs = append(runs, reloadRun{phase + 1, time.Since(start), code})
		if code != 0 {
			b.t.Errorf("systemctl reload myapp (%d) exited %d", i+1, code)
		} else {
			gen++
		}
		// The old workers drain after the reload returned: still part of
		// this reload's phase.
		b.waitDrained(mainPid)
		b.waitLoad(ld, 50)
	}
	last := UpgradeVersion(len(b.build.Upgrades) - 1)
	afterPhase := ld.Next(fmt.Sprintf("after the last reload: old workers gone, only %s generation %d may answer", last, gen)) + 1
	b.waitLoad(ld, 200)

	b.install(b.build.Broken, "a script that exits 1")
	brokenPhase := ld.Next("reload to a broken build, and after it") + 1
	start := time.Now()
	out, code := b.try("systemctl", "reload", "myapp")
	brokenTook := time.Since(start)
	if code == 0 {
		b.t.Errorf("systemctl reload myapp to a broken build exited 0: %s", out)
	}
	b.waitDrained(mainPid)
	b.waitLoad(ld, 200)
	b.endLoad(ld)

	// The evidence: per phase, what each client saw.
	var lines []string
	for i := 0; i <= brokenPhase; i++ {
		p := ld.Phase(i)
		took := ""
		for _, r := range runs {
			if r.phase == i {
				took = fmt.Sprintf(" (systemctl reload took %v, exit %d)", r.took.Round(time.Millisecond), r.code)
			}
		}
		if i == brokenPhase {
			took = fmt.Sprintf(" (systemctl reload took %v, exit %d)", brokenTook.Round(time.Millisecond), code)
		}
		lines = append(lines, fmt.Sprintf("%s%s:", p.name, took))
		for c, name := range clientNames {
			lines = append(lines, fmt.Sprintf("  %-10s %s", name, p.clients[c]))
			if p.clients[c].failed+p.clients[c].connErrs > 0 {
				b.t.Errorf("%s: %s client: %d failed requests, %d connection errors (%s)", p.name, name, p.clients[c].failed, p.clients[c].connErrs, countList(p.clients[c].errs))
			}
		}
	}
	b.t.Logf("requests per phase:\n%s", strings.Join(lines, "\n"))
	want := strconv.Itoa(gen)
	for _, i := range []int{afterPhase, brokenPhase} {
		p := ld.Phase(i)
		for c, name := range clientNames {
			for v := range p.clients[c].versions {
				if v != last {
					b.t.Errorf("%s: %s client was answered by version %s, want only %s", p.name, name, v, last)
				}
			}
			for g := range p.clients[c].generations {
				if g != want {
					b.t.Errorf("%s: %s client was answered by generation %s, want only %s", p.name, name, g, want)
				}
			}
		}
	}
	for _, r := range b.generationWorkers(want, workers) {
		if r.Version != last {
			b.t.Errorf("after the failed reload, %s answered; want %s", strings.TrimSpace(r.Body), last)
		}
	}

	status, _ := b.try("systemctl", "status", "--no-pager", "-n", "0", "myapp")
	line := statusLine(status)
	wantStatus := fmt.Sprintf("; serving generation %d", gen)
	if !strings.HasPrefix(line, "reload failed: ") || !strings.Contains(line, wantStatus) {
		b.t.Errorf("systemctl status shows Status: %q, want \"reload failed: ...%s\"", line, wantStatus)
	}
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "SubState")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("MainPID %s->%s, NRestarts %s->%s, %s; want drover kept, NRestarts unchanged, active",
			before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	b.waitJournal("reload done", "rollback done")
}

// testNotifyReload: on systemd 253+, Type=notify-reload without
// ExecReload=: systemd sends SIGHUP and waits for drover's RELOADING=1
// (with MONOTONIC_USEC) and READY=1; systemctl reload returns once the new
// generation serves, without hanging to the timeout. systemd 252 has no
// such type: the scenario shows it refusing the setting and skips.
func testNotifyReload(b *box) {
	const dropIn = `[Service]
Type=notify-reload
ExecReload=
`
	if b.m.Distro.Systemd < 253 {
		b.write(serviceDropIns+"/lab-scenario.conf", dropIn)
		out, _ := b.try("systemd-analyze", "verify", "myapp.service")
		b.t.Skipf("systemd %d has no Type=notify-reload (added in 253; %q); units/ ships Type=notify with ExecReload=/usr/bin/drover reload for it",
			b.m.Distro.Systemd, firstLine(strings.TrimSpace(out)))
	}
	b.dropIn("myapp.service", dropIn)
	b.startByConnection()
	b.showLogged("myapp.service", "Type", "ExecReload", "ReloadSignal")
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	b.distinctWorkers(workers)
	b.install(b.build.Upgrades[0], "main.version="+UpgradeVersion(0))
	start := time.Now()
	_, code := b.try("systemctl", "reload", "myapp")
	took := time.Since(start)
	if code != 0 {
		b.t.Fatalf("systemctl reload myapp exited %d", code)
	}
	// A reload systemd does not see end waits TimeoutStartSec= (60s).
	if took > 5*time.Second {
		b.t.Errorf("systemctl reload took %v: did systemd wait for a READY=1 that never came?", took)
	}
	for _, r := range b.generationWorkers("2", workers) {
		if r.Version != UpgradeVersion(0) {
			b.t.Errorf("generation 2 answered with version %s, want %s", r.Version, UpgradeVersion(0))
		}
	}
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "SubState", "ReloadResult", "StatusText")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("MainPID %s->%s, NRestarts %s->%s, %s; want drover kept, NRestarts unchanged, active",
			before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	if r := after["ReloadResult"]; r != "" && r != "success" {
		b.t.Errorf("ReloadResult=%s, want success", r)
	}
	j := b.waitJournal("reload done", "Reloaded")
	if strings.Contains(j, "timed out") {
		b.t.Errorf("the journal says something timed out")
	}
}
