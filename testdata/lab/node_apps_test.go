package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Issue 15 in the lab: unmodified Node apps (testdata/node-apps, and one
// from the npm registry), on the Node of each release's own nodejs
// package, turned into units by drover init --from-pm2 from a real
// ecosystem.config.js.

// npmPackages are what the Node scenarios install from the npm registry:
// express for the apps in testdata/node-apps, and two published apps run
// as they are.
var npmPackages = []string{"express@4", "json-server@0.17.4", "http-server@14.1.1"}

// nodeApp is one app of the lab's ecosystem file.
type nodeApp struct {
	name   string // PM2's name, and the units'
	script string // in NodeAppsPath, or NodeModulesPath with module
	module bool   // an app from the npm registry, in NodeModulesPath
	args   []string
	answer string // the "hello from ANSWER pid=" of its replies
	// answerRE matches the replies of an app that does not say its pid
	// (a published one), its group "version" being answer; nil: the
	// apps of testdata/node-apps.
	answerRE *regexp.Regexp
	// options are more of its ecosystem entry (JavaScript), env its
	// variables besides PORT.
	options, env string
	// flags must be in its ExecStart= (drover init's mapping).
	flags []string
	port  int
}

// nodeAnswerRE matches an answer of the apps in testdata/node-apps; version
// is the app.
var nodeAnswerRE = regexp.MustCompile(`^hello from (?P<version>[\w-]+) pid=(\d+)`)

// nodeEcosystemPath is where the scenarios write the ecosystem file: in
// /run/drover-lab, which reset removes.
const nodeEcosystemPath = "/run/drover-lab/pm2/ecosystem.config.js"

// ecosystem is the apps' ecosystem.config.js, as PM2 reads it.
func ecosystem(apps []nodeApp) string {
	var b strings.Builder
	b.WriteString("// Written by the drover lab: PM2's ecosystem file for testdata/node-apps.\nmodule.exports = {\n  apps: [\n")
	for _, a := range apps {
		env := fmt.Sprintf("PORT: %d", a.port)
		if a.env != "" {
			env += ", " + a.env
		}
		args := ""
		if len(a.args) > 0 {
			args = "\n      args: ['" + strings.Join(a.argv(), "', '") + "'],"
		}
		fmt.Fprintf(&b, "    {\n      name: '%s',\n      script: '%s',%s\n      %s,\n      env: { %s },\n    },\n", a.name, a.path(), args, a.options, env)
	}
	b.WriteString("  ],\n};\n")
	return b.String()
}

// nodeHTTPServerDir is what http-server serves: a directory, so its
// answer to / is the listing.
const nodeHTTPServerDir = "/run/drover-lab/pm2/www"

// nodeJSONServerDB is json-server's data, a module (in memory: no file
// is written).
const nodeJSONServerDB = "/run/drover-lab/pm2/db.js"

// argv is the app's args, "PORT" being its port.
func (a nodeApp) argv() []string {
	var argv []string
	for _, arg := range a.args {
		if arg == "PORT" {
			arg = strconv.Itoa(a.port)
		}
		argv = append(argv, arg)
	}
	return argv
}

// path is the app's script inside.
func (a nodeApp) path() string {
	if a.module {
		return NodeModulesPath + "/" + a.script
	}
	return NodeAppsPath + "/" + a.script
}

// replies is what the app's replies match.
func (a nodeApp) replies() *regexp.Regexp {
	if a.answerRE != nil {
		return a.answerRE
	}
	return nodeAnswerRE
}

// nodeSetUp skips without express, gives each app a free port, writes the
// ecosystem file and runs drover init --from-pm2 FILE --install, checking
// what it wrote; every unit is removed when the scenario ends.
func (b *box) nodeSetUp(apps []nodeApp) {
	b.t.Helper()
	if b.build.NodeModules == "" {
		b.t.Skip("express is not installed (npm not found): run make deps")
	}
	b.try("node", "--version")
	for i := range apps {
		port, err := FreePort()
		if err != nil {
			b.t.Fatal(err)
		}
		apps[i].port = port
		b.removeAtEnd(apps[i].name+".service", apps[i].name+".socket")
	}
	text := ecosystem(apps)
	b.write(nodeEcosystemPath, text)
	b.t.Logf("%s:\n%s", nodeEcosystemPath, text)
	out, code := b.try("/usr/bin/drover", "init", "--from-pm2", nodeEcosystemPath, "--install")
	if code != 0 {
		b.t.Fatalf("drover init --from-pm2 exited %d", code)
	}
	var enable []string
	for _, a := range apps {
		for _, unit := range []string{a.name + ".socket", a.name + ".service"} {
			if !strings.Contains(out, "wrote "+initUnitDir+"/"+unit+"\n") {
				b.t.Errorf("drover init did not say it wrote %s/%s", initUnitDir, unit)
			}
		}
		enable = append(enable, a.name+".socket")
		service, _ := b.quiet("cat", initUnitDir+"/"+a.name+".service")
		socket, _ := b.quiet("cat", initUnitDir+"/"+a.name+".socket")
		var execStart string
		for line := range strings.SplitSeq(service, "\n") {
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				execStart = v
			}
		}
		b.t.Logf("%s.service: ExecStart=%s", a.name, execStart)
		run, command, _ := strings.Cut(execStart, " -- ")
		for _, f := range append([]string{"--node", "--workers 2"}, a.flags...) {
			if !strings.Contains(run+" ", " "+f+" ") {
				b.t.Errorf("%s.service: ExecStart=%s lacks %s", a.name, execStart, f)
			}
		}
		if want := strings.Join(append([]string{"/usr/bin/node", a.path()}, a.argv()...), " "); command != want {
			b.t.Errorf("%s.service runs %q, want %q", a.name, command, want)
		}
		if strings.Contains(service, "\nMemoryDenyWriteExecute=yes") {
			b.t.Errorf("%s.service has MemoryDenyWriteExecute=yes: node's JIT dies under it", a.name)
		}
		if !strings.Contains(service, fmt.Sprintf("\nEnvironment=\"PORT=%d\"\n", a.port)) || !strings.Contains(socket, fmt.Sprintf("\nListenStream=%d\n", a.port)) {
			b.t.Errorf("%s: the service has no Environment=PORT=%d or the socket does not listen on it", a.name, a.port)
		}
	}
	if want := "systemctl enable --now " + strings.Join(enable, " "); !strings.Contains(out, want) {
		b.t.Errorf("drover init did not say %q", want)
	}
}

// nodeGet sends one request on a new connection to the app and returns
// the answering pid.
func (b *box) nodeGet(a nodeApp, path string, timeout time.Duration) (pid int, body string, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d%s", a.port, path), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	body = string(data)
	if err != nil {
		return 0, body, err
	}
	re := a.replies()
	m := re.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || m[re.SubexpIndex("version")] != a.answer {
		return 0, body, fmt.Errorf("%s answered %s %.200q, want %s's answer", a.name, resp.Status, body, a.answer)
	}
	if a.answerRE == nil {
		pid, _ = strconv.Atoi(m[2])
	}
	return pid, body, nil
}

// nodeStart starts the app's socket and lets the first connection start
// the service; it returns drover's pid once the service is active and two
// distinct workers, the ones drover status lists, have answered.
func (b *box) nodeStart(a nodeApp) (mainPid int) {
	b.t.Helper()
	b.sh("systemctl", "start", a.name+".socket")
	start := time.Now()
	_, body, err := b.nodeGet(a, "/", 30*time.Second)
	if err != nil {
		b.t.Fatalf("first request to %s: %v", a.name, err)
	}
	b.t.Logf("GET http://127.0.0.1:%d/ -> %s (answered after %v: the connection started %s.service)", a.port, strings.TrimSpace(body), time.Since(start).Round(time.Millisecond), a.name)
	b.waitFor(a.name+".service to be active", 30*time.Second, func() (bool, string) {
		st := b.show(a.name+".service", "ActiveState", "StatusText")
		return st["ActiveState"] == "active", fmt.Sprintf("ActiveState=%s StatusText=%q", st["ActiveState"], st["StatusText"])
	})
	mainPid, _ = strconv.Atoi(b.showLogged(a.name+".service", "MainPID", "StatusText")["MainPID"])
	seen := map[int]string{}
	requests := 0
	b.waitFor(fmt.Sprintf("%d distinct worker pids of %s to answer", workers, a.name), 15*time.Second, func() (bool, string) {
		if a.answerRE != nil {
			maps.Copy(seen, b.nodeServingPids(a))
			return len(seen) >= workers, fmt.Sprintf("%d distinct pids held the connections answered", len(seen))
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				pid, body, err := b.nodeGet(a, "/", 5*time.Second)
				mu.Lock()
				defer mu.Unlock()
				requests++
				if err != nil {
					b.t.Errorf("request to %s failed: %v", a.name, err)
					return
				}
				seen[pid] = strings.TrimSpace(body)
			})
		}
		wg.Wait()
		if b.t.Failed() {
			b.t.FailNow()
		}
		return len(seen) >= workers, fmt.Sprintf("%d distinct pids in %d requests", len(seen), requests)
	})
	var pids []int
	for pid, body := range seen {
		pids = append(pids, pid)
		b.t.Logf("  answered: %s", body)
	}
	slices.Sort(pids)
	st, raw := b.statusJSON(a.name, 0)
	b.t.Logf("$ drover status --json %s\n%s", a.name, strings.TrimRight(raw, "\n"))
	if st.Drover == nil || st.Drover.Pid != mainPid || st.Drover.Workers != workers || st.Drover.Ready != workers || !slices.Equal(st.pids("ready"), pids) {
		b.t.Fatalf("drover status %s: %v; want drover %d with %d ready workers, the pids that answered: %v", a.name, st, mainPid, workers, pids)
	}
	return mainPid
}

// nodeServingPids is nodeStart's count of distinct answering workers for
// an app whose replies do not say the pid: it keeps 8 connections open,
// each answered once, and returns the ready workers (drover status) that
// hold one, as /proc shows them (the socket inodes in /proc/PID/fd of an
// established connection on the app's port in /proc/net/tcp{,6}).
func (b *box) nodeServingPids(a nodeApp) map[int]string {
	b.t.Helper()
	for range 8 {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", a.port), 5*time.Second)
		if err != nil {
			b.t.Fatalf("connect to %s: %v", a.name, err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		if o, _ := request(conn, br, true, a.replies()); o.failed {
			b.t.Fatalf("request to %s failed: %s", a.name, o.kind)
		}
	}
	st, _ := b.statusJSON(a.name, 0)
	script := fmt.Sprintf(`port=%04X
for pid in "$@"; do
  n=0
  for ino in $(ls -l /proc/$pid/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]$/\1/p'); do
    awk -v ino="$ino" -v port="$port" '$4 == "01" && $10 == ino && $2 ~ (":" port "$") {f = 1} END {exit !f}' /proc/net/tcp /proc/net/tcp6 && n=$((n + 1))
  done
  echo "$pid $n"
done`, a.port)
	args := []string{"sh", "-c", script, "sh"}
	for _, pid := range st.pids("ready") {
		args = append(args, strconv.Itoa(pid))
	}
	out, err := b.quiet(args...)
	if err != nil {
		b.t.Fatalf("count %s's connections per worker: %v\n%s", a.name, err, out)
	}
	held := map[int]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var pid, n int
		if _, err := fmt.Sscan(line, &pid, &n); err == nil && n > 0 {
			held[pid] = fmt.Sprintf("%s pid=%d held %d of the 8 connections, each answered", a.answer, pid, n)
		}
	}
	return held
}

// nodeReloads runs the load generator against the app through 5
// `systemctl reload`, each waited for until the old workers drained, and
// fails the test on any failed request. It returns the requests answered.
func (b *box) nodeReloads(a nodeApp, mainPid int) (total int) {
	b.t.Helper()
	const reloads = 5
	before := b.show(a.name+".service", "NRestarts")
	ld := startLoadFor(a.port, "warm-up", a.replies())
	b.t.Cleanup(ld.Stop)
	b.waitLoad(ld, 50)
	for i := range reloads {
		ld.Next(fmt.Sprintf("reload %d", i+1))
		if _, code := b.try("systemctl", "reload", a.name); code != 0 {
			b.t.Errorf("systemctl reload %s (%d) exited %d", a.name, i+1, code)
		}
		b.waitDrained(mainPid)
		b.waitLoad(ld, 50)
	}
	b.endLoad(ld)
	var lines []string
	failed := 0
	for i := 0; i <= reloads; i++ {
		p := ld.Phase(i)
		lines = append(lines, p.name+":")
		for c, name := range clientNames {
			s := p.clients[c]
			lines = append(lines, fmt.Sprintf("  %-10s %s", name, s))
			total += s.ok + s.failed + s.connErrs
			failed += s.failed + s.connErrs
			if s.failed+s.connErrs > 0 {
				b.t.Errorf("%s, %s: %s client: %d failed requests, %d connection errors (%s)", a.name, p.name, name, s.failed, s.connErrs, countList(s.errs))
			}
			if s.ok == 0 {
				b.t.Errorf("%s, %s: the %s client got no answer", a.name, p.name, name)
			}
			for v := range s.versions {
				if v != a.answer {
					b.t.Errorf("%s, %s: answered by %s", a.name, p.name, v)
				}
			}
		}
	}
	b.t.Logf("%s: requests per phase:\n%s", a.name, strings.Join(lines, "\n"))

	// Drover reloaded in place each time; every old worker drained and
	// exited 0 (none was killed at --stop-timeout).
	after := b.showLogged(a.name+".service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	if after["MainPID"] != strconv.Itoa(mainPid) || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("%s after the reloads: MainPID %d->%s, NRestarts %s->%s, %s; want drover kept, active", a.name, mainPid, after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	st := b.waitStatus(a.name+"'s last generation to be ready", a.name, 10*time.Second, false, func(st droverStatus) bool {
		return st.Drover != nil && st.Drover.Ready == workers && len(st.Drover.Processes) == workers
	})
	if st.Drover.Generation != reloads+1 || st.Drover.Restarts != 0 {
		b.t.Errorf("%s: drover status says generation %d, %d restarts; want generation %d, none", a.name, st.Drover.Generation, st.Drover.Restarts, reloads+1)
	}
	// drover's MESSAGE= has its fields after the text, as on stderr.
	exits := map[string]int{}
	for _, e := range b.unitEntries(a.name+".service", "", "SYSLOG_IDENTIFIER=drover") {
		switch {
		case strings.HasPrefix(e["MESSAGE"], "worker exited "):
			exits[e["EXIT_STATUS"]]++
		case strings.HasPrefix(e["MESSAGE"], "worker failed"), strings.Contains(e["MESSAGE"], "sending SIGKILL"):
			b.t.Errorf("%s: drover logged %q (%s)", a.name, e["MESSAGE"], e["REASON"])
		}
	}
	b.t.Logf("%s: drained workers' exits: %s", a.name, countList(exits))
	if exits["exit status 0"] != reloads*workers || len(exits) != 1 {
		b.t.Errorf("%s: drained workers exited %s; want %d × exit status 0", a.name, countList(exits), reloads*workers)
	}
	b.t.Logf("node %s: %d requests, %d failed over %d reloads", a.name, total, failed, reloads)
	return total
}

// testNodePM2 (issue 15): four Node apps written for PM2 (an Express app
// that calls app.listen(PORT), one that says process.send('ready') after
// an async start, one with PM2's graceful shutdown on SIGINT, one with no
// signal handling at all), and json-server (Express, no signal handling)
// and http-server (process.exit() on SIGINT) from the npm registry, run
// as published, from one ecosystem.config.js through drover init --from-pm2
// --install: each socket-activated, served by two distinct workers,
// through 5 reloads under load with no failed request.
func testNodePM2(b *box) {
	apps := []nodeApp{
		{name: "node-express", script: "express-listen.js", answer: "express",
			options: "instances: 2,\n      exec_mode: 'cluster',\n      kill_timeout: 5000",
			env:     "NODE_ENV: 'production'", flags: []string{"--stop-signal INT", "--stop-timeout 5s"}},
		{name: "node-ready", script: "ready.js", answer: "ready",
			options: "instances: 2,\n      exec_mode: 'cluster',\n      wait_ready: true,\n      listen_timeout: 10000,\n      kill_timeout: 5000",
			env:     "READY_AFTER_MS: 300", flags: []string{"--ready notify", "--ready-timeout 10s", "--stop-signal INT"}},
		{name: "node-graceful", script: "pm2-graceful.js", answer: "pm2-graceful",
			options: "instances: 2,\n      exec_mode: 'cluster',\n      wait_ready: true,\n      kill_timeout: 5000",
			flags:   []string{"--ready notify", "--stop-signal INT"}},
		{name: "node-plain", script: "plain.js", answer: "plain",
			options: "instances: 2", flags: []string{"--stop-signal INT"}},
		// Published on npm and run as it is: an Express app calling
		// app.listen(port, host), with no signal handling.
		{name: "json-server", script: "json-server/lib/cli/bin.js", module: true,
			args: []string{"--port", "PORT", nodeJSONServerDB}, answer: "JSON Server",
			answerRE: regexp.MustCompile(`<title>(?P<version>JSON Server)</title>`),
			options:  "instances: 2,\n      exec_mode: 'cluster'", flags: []string{"--stop-signal INT"}},
		// Published on npm and run as it is: a server whose SIGINT and
		// SIGTERM handlers call process.exit() at once.
		{name: "http-server", script: "http-server/bin/http-server", module: true,
			args: []string{"-p", "PORT", "-s", nodeHTTPServerDir}, answer: "Index of",
			answerRE: regexp.MustCompile(`<title>(?P<version>Index of) /</title>`),
			options:  "instances: 2,\n      exec_mode: 'cluster'", flags: []string{"--stop-signal INT"}},
	}
	b.write(nodeJSONServerDB, "module.exports = () => ({ posts: [{ id: 1, title: 'drover' }] });\n")
	b.write(nodeHTTPServerDir+"/hello.txt", "hello\n")
	b.nodeSetUp(apps)
	results := map[string]int{}
	for _, a := range apps {
		start := time.Now()
		mainPid := b.nodeStart(a)
		results[a.name] = b.nodeReloads(a, mainPid)
		b.sh("systemctl", "stop", a.name+".service", a.name+".socket")
		b.t.Logf("%s: started, reloaded 5 times under load and stopped in %v", a.name, time.Since(start).Round(time.Millisecond))
		if b.t.Failed() {
			return
		}
	}
	var lines []string
	for _, a := range apps {
		lines = append(lines, fmt.Sprintf("  %-14s %6d requests, 0 failed", a.name, results[a.name]))
	}
	b.t.Logf("%s, node %s, 5 reloads each under load:\n%s", b.m.Distro.Name, b.nodeVersion(), strings.Join(lines, "\n"))
}

// nodeVersion is node --version inside.
func (b *box) nodeVersion() string {
	out, _ := b.quiet("node", "--version")
	return strings.TrimSpace(out)
}

// testNodeHang (issue 15): a Node app with nothing for drover in it, under
// --worker-watchdog 1s (a drop-in on the unit drover init wrote: PM2 has no
// such option), stays up while its event loop runs, however long; a
// handler that spins forever stops the preload's heartbeat, and drover
// kills that worker as hung and replaces it, the unit staying active.
func testNodeHang(b *box) {
	const interval = time.Second
	apps := []nodeApp{{name: "node-hang", script: "plain.js", answer: "plain", options: "instances: 2"}}
	b.nodeSetUp(apps)
	a := apps[0]
	service := b.sh("cat", initUnitDir+"/"+a.name+".service")
	var execStart string
	for line := range strings.SplitSeq(service, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	dropIns := initUnitDir + "/" + a.name + ".service.d"
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.m.Output(ctx, "rm", "-rf", dropIns)
	})
	dropIn := fmt.Sprintf("# Written by the drover lab: the worker watchdog.\n[Service]\nExecStart=\nExecStart=%s\n",
		strings.Replace(execStart, " run ", fmt.Sprintf(" run --worker-watchdog %v ", interval), 1))
	b.write(dropIns+"/lab-watchdog.conf", dropIn)
	b.t.Logf("drop-in %s/lab-watchdog.conf:\n%s", dropIns, dropIn)
	b.sh("systemctl", "daemon-reload")

	mainPid := b.nodeStart(a)
	before := b.show(a.name+".service", "NRestarts")
	// Healthy: pinged within the interval, three intervals after start.
	healthy := b.waitStatus("the heartbeat to keep both workers alive past 3 intervals", a.name, 15*time.Second, true, func(st droverStatus) bool {
		if st.Drover == nil || len(st.Drover.Processes) != workers || st.Drover.Restarts != 0 {
			return false
		}
		for _, p := range st.Drover.Processes {
			if p.State != "ready" || p.LastPing.IsZero() || time.Since(p.Started) < 3*interval || time.Since(p.LastPing) > interval {
				return false
			}
		}
		return true
	})
	old := healthy.pids("ready")

	// The request never gets an answer: its worker dies with it.
	spun := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := b.nodeGet(a, "/spin", 60*time.Second)
		spun <- err
	}()
	var victim int
	st := b.waitStatus("the spinning worker to be killed and replaced", a.name, 30*time.Second, true, func(st droverStatus) bool {
		if st.Drover == nil || st.Drover.Ready != workers || len(st.Drover.Processes) != workers || st.Drover.Restarts != 1 {
			return false
		}
		gone := 0
		for _, pid := range old {
			if !slices.Contains(st.pids("ready"), pid) {
				victim, gone = pid, gone+1
			}
		}
		return gone == 1
	})
	replaced := time.Since(start)
	select {
	case err := <-spun:
		b.t.Logf("the /spin request ended with the worker: %v", err)
	case <-time.After(10 * time.Second):
		b.t.Errorf("the /spin request is still open after its worker was replaced")
	}
	for _, p := range st.Drover.Processes {
		if !slices.Contains(old, p.Pid) && p.Restarts != 1 {
			b.t.Errorf("the replacement %d in slot %d has %d restarts, want 1", p.Pid, p.Slot, p.Restarts)
		}
	}

	var hung, failed entry
	for _, e := range b.unitEntries(a.name+".service", "", "SYSLOG_IDENTIFIER=drover", "WORKER_PID="+strconv.Itoa(victim)) {
		switch {
		case strings.HasPrefix(e["MESSAGE"], "worker hung: killing it "):
			hung = e
		case strings.HasPrefix(e["MESSAGE"], "worker failed "):
			failed = e
		}
	}
	b.t.Logf("drover on worker %d:\n  %s\n  %s", victim, hung["MESSAGE"], failed["MESSAGE"])
	if !strings.Contains(hung["REASON"], "no WATCHDOG=1 within 1s") {
		b.t.Errorf("no \"worker hung\" entry for %d saying it sent no WATCHDOG=1 within 1s: %v", victim, hung)
	}
	if failed["MESSAGE"] == "" {
		b.t.Errorf("no \"worker failed\" entry for %d", victim)
	}
	detected := time.Duration(0)
	if us, err := strconv.ParseInt(hung["__REALTIME_TIMESTAMP"], 10, 64); err == nil {
		detected = time.UnixMicro(us).Sub(start)
	}
	b.t.Logf("node %s, --worker-watchdog %v: the blocked event loop was detected %v after the request and the worker replaced after %v",
		b.nodeVersion(), interval, detected.Round(time.Millisecond), replaced.Round(time.Millisecond))

	after := b.showLogged(a.name+".service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	if after["MainPID"] != strconv.Itoa(mainPid) || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("after the hang: MainPID %d->%s, NRestarts %s->%s, %s; want drover kept, active", mainPid, after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	for range 8 {
		pid, _, err := b.nodeGet(a, "/", 5*time.Second)
		if err != nil {
			b.t.Fatalf("after the hang: %v", err)
		}
		if pid == victim {
			b.t.Errorf("the hung worker %d still answers", victim)
		}
	}
}
