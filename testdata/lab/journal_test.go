package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// entry is one journal entry, its string fields only (journalctl -o json
// gives binary fields as arrays of numbers; none of the ones asserted on
// is binary).
type entry map[string]string

func (e entry) String() string {
	return fmt.Sprintf("%s[%s] PRIORITY=%s WORKER_ID=%s WORKER_PID=%s GENERATION=%s: %s",
		e["SYSLOG_IDENTIFIER"], e["_PID"], e["PRIORITY"], e["WORKER_ID"], e["WORKER_PID"], e["GENERATION"], e["MESSAGE"])
}

// invocation returns myapp.service's current InvocationID. Queries with
// field matches select one run of the service by it, not with
// --after-cursor: journalctl 252 skips the first entry that matches after
// the cursor (it skips two entries, taking the first for the cursor's own,
// which a filter has already passed over); 257 does not.
func (b *box) invocation() string {
	b.t.Helper()
	var id string
	b.waitFor("myapp.service's InvocationID", 10*time.Second, func() (bool, string) {
		id = b.show("myapp.service", "InvocationID")["InvocationID"]
		return id != "", "InvocationID=" + id
	})
	return id
}

// journalEntries runs journalctl -u myapp.service -o json for the service
// run invocation names, with extra arguments (matches, -p), and decodes
// it. It streams, so that 100,000 entries are no problem; at most a
// minute.
func (b *box) journalEntries(invocation string, extra ...string) []entry {
	b.t.Helper()
	return b.unitEntries("myapp.service", invocation, extra...)
}

// unitEntries is journalEntries for any unit.
func (b *box) unitEntries(unit, invocation string, extra ...string) []entry {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	args := []string{"journalctl", "-q", "--no-pager", "-o", "json", "-u", unit}
	if invocation != "" {
		args = append(args, "_SYSTEMD_INVOCATION_ID="+invocation)
	}
	args = append(args, extra...)
	cmd := b.m.Command(ctx, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	var entries []entry
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	var decodeErr error
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			decodeErr = fmt.Errorf("decode %q: %w", sc.Text(), err)
			break
		}
		e := entry{}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				e[k] = s
			}
		}
		entries = append(entries, e)
	}
	if decodeErr == nil {
		decodeErr = sc.Err()
	}
	waitErr := cmd.Wait()
	if decodeErr != nil || waitErr != nil {
		b.t.Fatalf("$ %s: %v %v\n%s", strings.Join(args, " "), decodeErr, waitErr, stderr.String())
	}
	return entries
}

// chattyPath is a worker that writes one line on stdout, one on stderr and
// one with a "<4>" prefix, then becomes the example worker (same pid).
const chattyPath = "/usr/local/bin/chatty"

const chattyScript = `#!/bin/sh
# Written by the drover lab (journal scenario).
echo "chatty out worker=$DROVER_WORKER_ID generation=$DROVER_GENERATION pid=$$"
echo "chatty err worker=$DROVER_WORKER_ID generation=$DROVER_GENERATION pid=$$" >&2
echo "<4>chatty warn worker=$DROVER_WORKER_ID generation=$DROVER_GENERATION pid=$$"
exec /usr/bin/myapp
`

// chattyLine is the line kind ("out", "err", "warn") chatty writes for a
// worker.
func chattyLine(kind string, r reply) string {
	return fmt.Sprintf("chatty %s worker=%s generation=%s pid=%d", kind, r.Worker, r.Generation, r.Pid)
}

// testJournal (issue 5 §5): after a reload and a worker's crash, the
// journal holds drover's entries and every worker line with the fields
// and priorities the README promises, and journalctl's field and priority
// filters select them.
func testJournal(b *box) {
	b.write(chattyPath, chattyScript)
	b.sh("chmod", "0755", chattyPath)
	b.t.Logf("%s:\n%s", chattyPath, chattyScript)
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", chattyPath)))
	b.startByConnection()
	inv := b.invocation()
	all := b.generationWorkers("1", workers)
	b.sh("systemctl", "reload", "myapp")
	gen2 := b.generationWorkers("2", workers)
	all = append(all, gen2...)
	victim := gen2[len(gen2)-1]
	b.sh("kill", "-9", strconv.Itoa(victim.Pid))
	var replacement reply
	b.waitFor(fmt.Sprintf("a new worker in slot %s to answer", victim.Worker), 15*time.Second, func() (bool, string) {
		r, err := b.get(5 * time.Second)
		if err != nil {
			b.t.Fatalf("request after the kill failed: %v", err)
		}
		if r.Worker == victim.Worker && r.Pid != victim.Pid {
			replacement = r
			return true, strings.TrimSpace(r.Body)
		}
		return false, "not yet"
	})
	all = append(all, replacement)

	// Every worker's three lines, and drover's entries about the killed
	// worker and its replacement.
	var entries []entry
	b.waitFor("the journal to hold every worker's lines", 10*time.Second, func() (bool, string) {
		entries = b.journalEntries(inv)
		msgs := map[string]bool{}
		for _, e := range entries {
			msgs[e["MESSAGE"]] = true
		}
		for _, r := range all {
			for _, kind := range []string{"out", "err", "warn"} {
				if !msgs[chattyLine(kind, r)] {
					return false, "no " + strconv.Quote(chattyLine(kind, r))
				}
			}
		}
		return true, fmt.Sprintf("%d entries", len(entries))
	})
	var shown []string
	for _, e := range entries {
		if e["SYSLOG_IDENTIFIER"] == "drover" || e["SYSLOG_IDENTIFIER"] == "chatty" {
			shown = append(shown, e.String())
		}
	}
	b.t.Logf("$ journalctl -u myapp.service _SYSTEMD_INVOCATION_ID=%s -o json (drover's and the workers' entries)\n%s", inv, strings.Join(shown, "\n"))

	// Worker output goes to journald under the worker's own pid (its
	// stdout and stderr are journal streams): identifier, _PID, priority
	// per stream, <4> read and stripped by journald.
	byMsg := map[string]entry{}
	for _, e := range entries {
		byMsg[e["MESSAGE"]] = e
	}
	wantPriority := map[string]string{"out": "6", "err": "3", "warn": "4"}
	for _, r := range all {
		for _, kind := range []string{"out", "err", "warn"} {
			e := byMsg[chattyLine(kind, r)]
			want := entry{"SYSLOG_IDENTIFIER": "chatty", "_PID": strconv.Itoa(r.Pid), "PRIORITY": wantPriority[kind], "_SYSTEMD_UNIT": "myapp.service"}
			for k, v := range want {
				if e[k] != v {
					b.t.Errorf("%q: %s=%q, want %q", e["MESSAGE"], k, e[k], v)
				}
			}
		}
	}
	for _, e := range entries {
		if strings.Contains(e["MESSAGE"], "<4>") {
			b.t.Errorf("the <4> prefix was not stripped: %s", e)
		}
	}
	// journalctl's default format shows each line under its worker's pid.
	short, _ := b.quiet("journalctl", "-q", "--no-pager", "-o", "short", "-u", "myapp.service", "_SYSTEMD_INVOCATION_ID="+inv, "SYSLOG_IDENTIFIER=chatty")
	b.t.Logf("$ journalctl -u myapp.service -o short SYSLOG_IDENTIFIER=chatty (this run)\n%s", strings.TrimSpace(short))
	for _, r := range all {
		if want := fmt.Sprintf("chatty[%d]: %s", r.Pid, chattyLine("out", r)); !strings.Contains(short, want) {
			b.t.Errorf("journalctl -o short lacks %q", want)
		}
	}

	// drover's own entries carry the worker's fields; the new generation's
	// workers say GENERATION=2; the killed one's failure is a warning with
	// its exit status.
	for _, r := range append(gen2, replacement) {
		found := false
		for _, e := range entries {
			if e["SYSLOG_IDENTIFIER"] == "drover" && e["WORKER_PID"] == strconv.Itoa(r.Pid) && strings.HasPrefix(e["MESSAGE"], "worker started") {
				found = true
				if e["GENERATION"] != "2" || e["WORKER_ID"] != r.Worker {
					b.t.Errorf("drover's entry about worker %d: %s; want GENERATION=2 WORKER_ID=%s", r.Pid, e, r.Worker)
				}
			}
		}
		if !found {
			b.t.Errorf("no \"worker started\" entry of drover with WORKER_PID=%d", r.Pid)
		}
	}
	var failed []entry
	for _, e := range entries {
		if e["SYSLOG_IDENTIFIER"] == "drover" && strings.HasPrefix(e["MESSAGE"], "worker failed") {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 {
		b.t.Fatalf("%d \"worker failed\" entries of drover, want 1 (the killed worker %d)", len(failed), victim.Pid)
	}
	f := failed[0]
	b.t.Logf("the killed worker's entry: %s (EXIT_STATUS=%q REASON=%q)", f, f["EXIT_STATUS"], f["REASON"])
	want := entry{"PRIORITY": "4", "WORKER_ID": victim.Worker, "WORKER_PID": strconv.Itoa(victim.Pid), "GENERATION": "2"}
	for k, v := range want {
		if f[k] != v {
			b.t.Errorf("\"worker failed\": %s=%q, want %q", k, f[k], v)
		}
	}
	if f["EXIT_STATUS"] == "" {
		b.t.Errorf("\"worker failed\" has no EXIT_STATUS")
	}

	// drover logs myapp --worker N: slot N's lines only, from every worker
	// that filled it (the killed one and its replacement), and drover's
	// events about it.
	slot := victim.Worker
	logs := b.sh("/usr/bin/drover", "logs", "myapp", "--worker", slot, "-n", "1000")
	for _, r := range all {
		line := fmt.Sprintf("[w%s %d] %s", r.Worker, r.Pid, chattyLine("out", r))
		if has := strings.Contains(logs, line); has != (r.Worker == slot) {
			b.t.Errorf("drover logs --worker %s: has %q = %v, want %v", slot, line, has, r.Worker == slot)
		}
	}
	if !strings.Contains(logs, fmt.Sprintf("drover: worker failed exit=\"killed by SIGKILL\" generation=2 pid=%d", victim.Pid)) {
		b.t.Errorf("drover logs --worker %s lacks drover's entry about the killed worker %d", slot, victim.Pid)
	}

	// journalctl -u myapp -p err: stderr lines, not stdout ones.
	errs := b.journalEntries(inv, "-p", "err")
	var lines []string
	got := map[string]bool{}
	for _, e := range errs {
		lines = append(lines, e.String())
		got[e["MESSAGE"]] = true
		if p, _ := strconv.Atoi(e["PRIORITY"]); p > 3 {
			b.t.Errorf("journalctl -p err returned %s", e)
		}
	}
	b.t.Logf("$ journalctl -u myapp.service -p err _SYSTEMD_INVOCATION_ID=%s -o json\n%s", inv, strings.Join(lines, "\n"))
	for _, r := range all {
		if !got[chattyLine("err", r)] {
			b.t.Errorf("journalctl -p err left out %q", chattyLine("err", r))
		}
		for _, kind := range []string{"out", "warn"} {
			if got[chattyLine(kind, r)] {
				b.t.Errorf("journalctl -p err returned %q", chattyLine(kind, r))
			}
		}
	}
}

// burstLines is how many lines worker 0 writes in one burst.
const burstLines = 100_000

// testJournalBurst (issue 5 §5): worker 0 writes 100,000 lines as fast as
// it can, before it serves; with the shipped rate limit every line is in
// the journal, in order, and drover dropped none.
func testJournalBurst(b *box) {
	burst := b.unitSetting(b.build.Service, "LogRateLimitBurst")
	interval := b.unitSetting(b.build.Service, "LogRateLimitIntervalSec")
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", fmt.Sprintf(`/bin/sh -c 'if [ "$$DROVER_WORKER_ID" = 0 ]; then %s -mode spew -lines %d; fi; exec %s'`, TestworkerPath, burstLines, MyappPath))))
	b.showLogged("myapp.service", "LogRateLimitIntervalUSec", "LogRateLimitBurst")
	b.sh("systemctl", "start", "myapp.socket")
	start := time.Now()
	// Worker 0 is ready only once it has written everything, and drover
	// once every worker is: start returns after the burst, as it does for
	// the plain service, so that nothing reads the journal meanwhile.
	b.sh("systemctl", "start", "myapp.service")
	inv := b.invocation()
	lastLine := fmt.Sprintf("spew %08d ", burstLines-1)
	b.waitFor("the burst's last line in the journal", time.Minute, func() (bool, string) {
		out, _ := b.quiet("journalctl", "-q", "--no-pager", "-o", "cat", "-u", "myapp.service", "_SYSTEMD_INVOCATION_ID="+inv, "SYSLOG_IDENTIFIER=sh", "-n", "1")
		out = strings.TrimSpace(out)
		return strings.HasPrefix(out, lastLine), "last line: " + firstLine(out)
	})
	took := time.Since(start)

	// Only the fields asserted on: 100,000 whole entries take seconds more.
	entries := b.journalEntries(inv, "--output-fields=MESSAGE,_PID,DROVER_DROPPED")
	var lines, dropped []entry
	for _, e := range entries {
		if _, ok := e["DROVER_DROPPED"]; ok {
			dropped = append(dropped, e)
		}
		if strings.HasPrefix(e["MESSAGE"], "spew ") {
			lines = append(lines, e)
		}
	}
	for _, e := range dropped {
		b.t.Errorf("drover dropped lines: %s DROVER_DROPPED=%s", e, e["DROVER_DROPPED"])
	}
	pids := map[string]int{}
	prev := -1
	outOfOrder := 0
	for _, e := range lines {
		pids[e["_PID"]]++
		seq, err := strconv.Atoi(e["MESSAGE"][5:13])
		if err != nil {
			b.t.Fatalf("line %q: no sequence number", e["MESSAGE"])
		}
		if seq <= prev {
			if outOfOrder++; outOfOrder <= 5 {
				b.t.Errorf("line %d comes after line %d", seq, prev)
			}
		}
		prev = seq
	}
	if len(lines) != burstLines || outOfOrder > 0 {
		b.t.Errorf("the journal holds %d of the %d lines (%d out of order), want all, in order", len(lines), burstLines, outOfOrder)
	}
	if len(pids) != 1 {
		b.t.Errorf("the lines came from pids %v, want worker 0's alone", pids)
	}
	var span time.Duration
	if len(lines) > 1 {
		first, _ := strconv.ParseInt(lines[0]["__REALTIME_TIMESTAMP"], 10, 64)
		last, _ := strconv.ParseInt(lines[len(lines)-1]["__REALTIME_TIMESTAMP"], 10, 64)
		span = time.Duration(last-first) * time.Microsecond
	}
	rate := float64(len(lines)) / span.Seconds()
	b.t.Logf("%d lines of 100 bytes in the journal, from pids (pid:lines) %s, strictly in order; %d DROVER_DROPPED entries; rate limit %s lines per %s. "+
		"First to last line in the journal: %v (%.0f lines/s); systemctl start to the last line found: %v",
		len(lines), countList(pids), len(dropped), burst, interval, span.Round(time.Millisecond), rate, took.Round(time.Millisecond))
	// The same burst from a plain service (StandardOutput=journal, the
	// same rate limit), measured the same way, right after.
	plain := b.plainBurst(1, burstLines, burst, interval)
	b.report("side by side, %d lines each: plain service %.0f lines/s, drover worker %.0f lines/s: drover at %.2f x the plain service's rate",
		burstLines, plain, rate, rate/plain)

	// journald says so when it rate-limits a service.
	out, _ := b.quiet("journalctl", "-q", "--no-pager", "-o", "short-precise", "--after-cursor="+b.cursor, "-u", "systemd-journald.service")
	b.t.Logf("$ journalctl -u systemd-journald.service (this scenario)\n%s", strings.TrimSpace(out))
	if strings.Contains(out, "Suppressed") {
		b.t.Errorf("journald suppressed messages: the shipped rate limit is too low")
	}
	b.showLogged("myapp.service", "ActiveState", "StatusText", "NRestarts")
}

// plainBurst runs testworker's spew as n plain services at once, each
// writing lines lines to journald (what a systemd user gets without
// drover), and returns the journal's rate for all of them together,
// checking that every line arrived once, in order per service.
func (b *box) plainBurst(n, lines int, burst, interval string) float64 {
	b.t.Helper()
	var units []string
	for i := range n {
		unit := fmt.Sprintf("plain-burst-%d-%d.service", n, i)
		units = append(units, unit)
		b.write("/run/systemd/system/"+unit, fmt.Sprintf(`[Service]
Type=oneshot
ExecStart=%s -mode spew -lines %d
StandardOutput=journal
LogRateLimitIntervalSec=%s
LogRateLimitBurst=%s
`, TestworkerPath, lines, interval, burst))
	}
	b.sh("systemctl", "daemon-reload")
	// Each unit runs once per boot of the lab: its whole journal is this run.
	b.sh(append([]string{"systemctl", "start"}, units...)...)
	var first, last int64
	total := 0
	for _, unit := range units {
		got := b.burstLines(unit, lines)
		total += len(got)
		f, _ := strconv.ParseInt(got[0]["__REALTIME_TIMESTAMP"], 10, 64)
		l, _ := strconv.ParseInt(got[len(got)-1]["__REALTIME_TIMESTAMP"], 10, 64)
		if first == 0 || f < first {
			first = f
		}
		last = max(last, l)
	}
	span := time.Duration(last-first) * time.Microsecond
	b.t.Logf("%d plain service(s): %d lines in the journal, first to last %v", n, total, span.Round(time.Millisecond))
	return float64(total) / span.Seconds()
}

// burstLines waits for unit's n spew lines and checks them: all there,
// once, in order.
func (b *box) burstLines(unit string, n int) []entry {
	b.t.Helper()
	lastLine := fmt.Sprintf("spew %08d ", n-1)
	var lines []entry
	b.waitFor(unit+"'s last line in the journal", time.Minute, func() (bool, string) {
		lines = lines[:0]
		for _, e := range b.unitEntries(unit, "", "--output-fields=MESSAGE") {
			if strings.HasPrefix(e["MESSAGE"], "spew ") { // not systemd's own lines about the unit
				lines = append(lines, e)
			}
		}
		k := len(lines)
		return k > 0 && strings.HasPrefix(lines[k-1]["MESSAGE"], lastLine), fmt.Sprintf("%d lines", k)
	})
	prev, bad := -1, 0
	for _, e := range lines {
		seq, err := strconv.Atoi(strings.TrimPrefix(e["MESSAGE"], "spew ")[:8])
		if err != nil || seq != prev+1 {
			bad++
		}
		prev = seq
	}
	if len(lines) != n || bad > 0 {
		b.t.Errorf("%s: %d of %d lines, %d out of sequence", unit, len(lines), n, bad)
	}
	return lines
}

// testJournalBurstAll: every worker writes a burst at once, and so do as
// many plain services: every line arrives, and the lab reports both rates.
func testJournalBurstAll(b *box) {
	const each = burstLines / workers
	burst := b.unitSetting(b.build.Service, "LogRateLimitBurst")
	interval := b.unitSetting(b.build.Service, "LogRateLimitIntervalSec")
	// The plain services first: the other scenario measures drover first,
	// so the two orders are both in each lab run.
	plain := b.plainBurst(workers, each, burst, interval)
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", fmt.Sprintf(`/bin/sh -c '%s -mode spew -lines %d; exec %s'`, TestworkerPath, each, MyappPath))))
	b.sh("systemctl", "start", "myapp.socket")
	// Blocking, as for the plain services: each worker is ready (it
	// serves) only once it has written its lines, and drover is ready
	// once every worker is. Reading the journal while they write would
	// take the CPU journald needs and lower the rate measured.
	b.sh("systemctl", "start", "myapp.service")
	inv := b.invocation()
	var lines []entry
	b.waitFor("every worker's burst in the journal", time.Minute, func() (bool, string) {
		lines = lines[:0]
		for _, e := range b.journalEntries(inv, "SYSLOG_IDENTIFIER=sh", "--output-fields=MESSAGE,_PID") {
			if strings.HasPrefix(e["MESSAGE"], "spew ") {
				lines = append(lines, e)
			}
		}
		return len(lines) >= each*workers, fmt.Sprintf("%d lines", len(lines))
	})
	byPid := map[string][]entry{}
	for _, e := range lines {
		byPid[e["_PID"]] = append(byPid[e["_PID"]], e)
	}
	if len(byPid) != workers || len(lines) != each*workers {
		b.t.Errorf("%d lines from pids %d, want %d from each of %d workers", len(lines), len(byPid), each, workers)
	}
	first0, _ := strconv.ParseInt(lines[0]["__REALTIME_TIMESTAMP"], 10, 64)
	for pid, got := range byPid {
		f, _ := strconv.ParseInt(got[0]["__REALTIME_TIMESTAMP"], 10, 64)
		l, _ := strconv.ParseInt(got[len(got)-1]["__REALTIME_TIMESTAMP"], 10, 64)
		b.t.Logf("worker %s: its lines from +%v to +%v", pid, time.Duration(f-first0)*time.Microsecond, time.Duration(l-first0)*time.Microsecond)
		for i, e := range got {
			if !strings.HasPrefix(e["MESSAGE"], fmt.Sprintf("spew %08d ", i)) {
				b.t.Errorf("worker %s: line %d is %.20q", pid, i, e["MESSAGE"])
				break
			}
		}
	}
	first, _ := strconv.ParseInt(lines[0]["__REALTIME_TIMESTAMP"], 10, 64)
	last, _ := strconv.ParseInt(lines[len(lines)-1]["__REALTIME_TIMESTAMP"], 10, 64)
	span := time.Duration(last-first) * time.Microsecond
	rate := float64(len(lines)) / span.Seconds()
	b.report("side by side, %d workers and %d plain services writing %d lines each at once: plain %.0f lines/s, drover %.0f lines/s (first to last %v): drover at %.2f x the plain services' rate",
		workers, workers, each, plain, rate, span.Round(time.Millisecond), rate/plain)
}

// testJournalQuickExit: a worker that writes one line and exits at once
// has it under `journalctl -u myapp.service`, at priority 3 from stderr,
// with its own pid, even when journald reads the line only after the
// worker exited: journald is stopped while the workers run and exit, and
// resumed once both are zombies that drover has not reaped. journald
// trusts the unit a stream names only from root, so it attributes the
// line by the writer's cgroup, which it can read only while the process
// is there: drover reaps a worker only once journald has read its output.
func testJournalQuickExit(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", `/bin/sh -c 'echo last words >&2; exit 1'`)))
	b.sh("systemctl", "start", "myapp.socket")
	journald := strings.TrimSpace(b.sh("systemctl", "show", "-P", "MainPID", "systemd-journald.service"))
	b.sh("kill", "-STOP", journald)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			b.quiet("kill", "-CONT", journald)
		}
	}
	defer resume()
	b.sh("systemctl", "start", "--no-block", "myapp.service")
	// Both workers exited and are unreaped: children of drover, state Z.
	b.sh("timeout", "10", "sh", "-c", `until drover=$(systemctl show -P MainPID myapp.service) && [ "$drover" != 0 ] &&
  [ "$(grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | xargs -r grep -hx "PPid:.$drover" | wc -l)" -ge 2 ]; do sleep 0.01; done`)
	resume()
	b.waitJournal("start failed")
	var lines []entry
	b.waitFor("both workers' last words under -u myapp.service", 10*time.Second, func() (bool, string) {
		// No invocation match: journald may know no more of a writer that
		// is gone than the unit its stream names.
		lines = b.journalEntries("", "SYSLOG_IDENTIFIER=sh", "MESSAGE=last words", "--output-fields=MESSAGE,PRIORITY,_PID")
		return len(lines) >= workers, fmt.Sprintf("%d lines", len(lines))
	})
	for _, e := range lines {
		if e["MESSAGE"] != "last words" || e["PRIORITY"] != "3" || e["_PID"] == "" {
			b.t.Errorf("worker line %v: want MESSAGE=last words, PRIORITY=3 and the worker's _PID", e)
		}
	}
}
