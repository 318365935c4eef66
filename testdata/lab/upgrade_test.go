package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tickDropIn makes every myapp worker write "tick N" lines, numbered from
// 1, every 20ms (example-worker's EXAMPLE_TICK).
const tickDropIn = "/etc/systemd/system/myapp.service.d/lab-tick.conf"

// pkgDroverUpgrade: dpkg -i of the next drover while the load generator
// runs and every worker writes numbered lines. The postinst upgrades
// myapp.service in place: MainPID and every worker pid unchanged, drover
// status names the new version, no request fails, no numbered line is
// lost or doubled, and a reload right after works. Then a broken drover
// binary on disk: the upgrade is refused and the same drover keeps
// serving with the same workers.
func pkgDroverUpgrade(p *pkgLab, b *box) {
	b.write(tickDropIn, "# Written by the drover lab.\n[Service]\nEnvironment=EXAMPLE_TICK=20ms\n")
	// Not b.quiet: the test's context is done by the time cleanups run.
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.m.Output(ctx, "rm", "-rf", filepath.Dir(tickDropIn))
		b.m.Output(ctx, "systemctl", "daemon-reload")
	})
	b.sh("systemctl", "daemon-reload")
	b.sh("systemctl", "restart", "myapp.service")
	st := b.waitStatus("myapp's workers ready", "myapp", 30*time.Second, false, func(st droverStatus) bool {
		return st.Drover != nil && st.Drover.Workers > 0 && st.Drover.Ready == st.Drover.Workers
	})
	p.mainPid = st.Drover.Pid
	kids := b.children(p.mainPid)
	slices.Sort(kids)
	before := st.Drover.Version

	ld := startLoad(b.port, "before the drover upgrade")
	b.t.Cleanup(ld.Stop)
	b.waitLoad(ld, 50)
	ld.Next(fmt.Sprintf("dpkg -i drover %s: upgraded in place", pkgUpgrade))
	out := b.long("dpkg", "-i", deb("drover", pkgUpgrade))
	if !regexp.MustCompile(`drover: myapp: upgraded in place \S+ -> ` + regexp.QuoteMeta(pkgUpgrade)).MatchString(out) {
		b.t.Errorf("dpkg -i drover did not say it upgraded myapp in place:\n%s", out)
	}
	after := ld.Next("after the drover upgrade") + 1
	b.waitLoad(ld, 100)
	ld.Stop()
	b.failedRequests(ld, after)

	st, raw := b.statusJSON("myapp", 0)
	b.t.Logf("$ drover status --json myapp\n%s", raw)
	now := b.children(p.mainPid)
	slices.Sort(now)
	switch {
	case st.Drover.Pid != p.mainPid || st.Unit.MainPID != p.mainPid:
		b.t.Errorf("drover's pid %d -> %d (MainPID %d): not in place", p.mainPid, st.Drover.Pid, st.Unit.MainPID)
	case !slices.Equal(now, kids):
		b.t.Errorf("workers %v -> %v: the upgrade touched them", kids, now)
	case st.Drover.Version != pkgUpgrade || st.Drover.UpgradedFrom != before || st.Drover.Upgraded.IsZero():
		b.t.Errorf("drover status: version %q, upgraded from %q at %v; want %s from %s", st.Drover.Version, st.Drover.UpgradedFrom, st.Drover.Upgraded, pkgUpgrade, before)
	}
	text := b.statusText("myapp", 0)
	if !strings.Contains(text, "drover "+pkgUpgrade+" · upgraded in place from "+before) {
		b.t.Errorf("drover status does not show the version and the upgrade:\n%s", text)
	}
	// A reload right after: the new drover runs it.
	gen := st.Drover.Generation
	b.long("systemctl", "reload", "myapp.service")
	b.waitReplaced(p.mainPid, kids, 30*time.Second)
	if st, _ = b.statusJSON("myapp", 0); st.Drover.Generation != gen+1 {
		b.t.Errorf("after the reload: generation %d, want %d", st.Drover.Generation, gen+1)
	}
	for _, pid := range kids {
		b.checkTicks(pid)
	}

	// A broken binary where drover's was: refused, nothing changes.
	b.sh("cp", "/usr/bin/drover", "/run/drover-good")
	b.write("/usr/bin/drover.lab-broken", "#!/bin/sh\necho 'drover: broken build' >&2\nexit 1\n")
	b.sh("chmod", "755", "/usr/bin/drover.lab-broken")
	b.sh("mv", "/usr/bin/drover.lab-broken", "/usr/bin/drover")
	before2 := b.children(p.mainPid)
	msg, code := b.try("/run/drover-good", "upgrade", "myapp")
	if code == 0 || !strings.Contains(msg, "does not answer upgrade-check") {
		b.t.Errorf("upgrade to a broken binary: exit %d, %q; want refused", code, msg)
	}
	b.sh("mv", "/run/drover-good", "/usr/bin/drover")
	st2, _ := b.statusJSON("myapp", 0)
	if st2.Drover.Pid != p.mainPid || !slices.Equal(b.children(p.mainPid), before2) || st2.Drover.Version != pkgUpgrade {
		b.t.Errorf("after a refused upgrade: pid %d, workers %v (were %v), version %s", st2.Drover.Pid, b.children(p.mainPid), before2, st2.Drover.Version)
	}
	if r := b.getLogged(5 * time.Second); r.Version != pkgUpgrade {
		b.t.Errorf("after a refused upgrade answered by %q", r.Version)
	}
}

// failedRequests fails the test for any failed request in phases up to
// last, and logs the counts.
func (b *box) failedRequests(ld *Load, last int) {
	b.t.Helper()
	var lines []string
	for i := 0; i <= last; i++ {
		ph := ld.Phase(i)
		lines = append(lines, ph.name+":")
		for c, name := range clientNames {
			lines = append(lines, fmt.Sprintf("  %-10s %s", name, ph.clients[c]))
			if ph.clients[c].failed+ph.clients[c].connErrs > 0 {
				b.t.Errorf("%s: %s client: %d failed requests, %d connection errors (%s)", ph.name, name, ph.clients[c].failed, ph.clients[c].connErrs, countList(ph.clients[c].errs))
			}
		}
	}
	b.t.Logf("requests per phase:\n%s", strings.Join(lines, "\n"))
}

var tickRE = regexp.MustCompile(`^tick (\d+)$`)

// checkTicks reads a worker's numbered lines from the journal: 1, 2, ...
// with none missing or doubled, across the upgrade.
func (b *box) checkTicks(pid int) {
	b.t.Helper()
	out, err := b.quiet("journalctl", "-q", "--no-pager", "-o", "cat", "_PID="+strconv.Itoa(pid))
	if err != nil {
		b.t.Fatalf("journalctl _PID=%d: %v", pid, err)
	}
	next := 1
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		m := tickRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if n != next {
			b.t.Errorf("worker %d: tick %d after tick %d: a line lost or doubled", pid, n, next-1)
			return
		}
		next++
	}
	if next < 10 {
		b.t.Errorf("worker %d wrote %d numbered lines, want more", pid, next-1)
	}
	b.t.Logf("worker %d: ticks 1..%d in the journal, none lost or doubled", pid, next-1)
}
