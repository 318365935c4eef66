package lab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Issue 12: drover never blocks and never dies of its surroundings.

// journaldUnits are journald's service and sockets.
var journaldUnits = []string{"systemd-journald.socket", "systemd-journald-dev-log.socket", "systemd-journald.service"}

// chatter is a worker that writes a line every 10 ms, then becomes the
// example worker (same pid); the loop is its child.
func chatter() string {
	return `/bin/sh -c '(while :; do echo tick; sleep 0.01; done) & exec ` + MyappPath + `'`
}

// testJournaldStuck: journald SIGSTOPped for longer than the watchdog
// while workers log: a killed worker is replaced, drover status answers,
// and systemd's watchdog never fires (drover's own log cannot block its
// event loop).
func testJournaldStuck(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
WatchdogSec=4s
ExecStart=
ExecStart=%s
`, b.execStart("", chatter())))
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	ws := b.distinctWorkers(workers)
	jpid := b.showLogged("systemd-journald.service", "MainPID")["MainPID"]
	b.sh("kill", "-STOP", jpid)
	stopped := time.Now()
	defer b.sh("kill", "-CONT", jpid)

	b.sh("kill", "-9", strconv.Itoa(ws[0].Pid))
	b.waitFor("a replacement to answer while journald is stopped", 10*time.Second, func() (bool, string) {
		r, err := b.get(5 * time.Second)
		if err != nil {
			b.t.Fatalf("request while journald is stopped: %v", err)
		}
		return r.Worker == ws[0].Worker && r.Pid != ws[0].Pid, strings.TrimSpace(r.Body)
	})
	start := time.Now()
	st, _ := b.statusJSON("myapp", 0)
	b.t.Logf("drover status answered in %v with journald stopped: %d/%d ready", time.Since(start).Round(time.Millisecond), st.Drover.Ready, st.Drover.Workers)
	// Past twice the watchdog interval with journald still stopped.
	for time.Since(stopped) < 9*time.Second {
		if _, err := b.get(5 * time.Second); err != nil {
			b.t.Fatalf("request while journald is stopped: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "Result")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" || after["Result"] == "watchdog" {
		b.t.Errorf("with journald stopped %v: MainPID %s->%s, NRestarts %s->%s, %s (%s); want drover kept, active",
			time.Since(stopped).Round(time.Second), before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"], after["Result"])
	}
}

// testJournaldGone: journald stopped altogether (its sockets too): worker
// output and drover's own log fail with EPIPE, and drover lives on.
func testJournaldGone(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", chatter())))
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID")
	ws := b.distinctWorkers(workers)
	b.sh(append([]string{"systemctl", "stop"}, journaldUnits...)...)
	defer b.sh(append([]string{"systemctl", "start"}, journaldUnits...)...)
	b.sh("kill", "-9", strconv.Itoa(ws[1].Pid)) // drover logs; the worker keeps writing
	b.waitFor("a replacement to answer with journald gone", 10*time.Second, func() (bool, string) {
		r, err := b.get(5 * time.Second)
		if err != nil {
			b.t.Fatalf("request with journald gone: %v", err)
		}
		return r.Worker == ws[1].Worker && r.Pid != ws[1].Pid, strings.TrimSpace(r.Body)
	})
	for range 10 {
		if _, err := b.get(5 * time.Second); err != nil {
			b.t.Fatalf("request with journald gone: %v", err)
		}
	}
	after := b.showLogged("myapp.service", "MainPID", "ActiveState")
	if after["MainPID"] != before["MainPID"] || after["ActiveState"] != "active" {
		b.t.Errorf("with journald gone: MainPID %s->%s, %s; want drover alive and active", before["MainPID"], after["MainPID"], after["ActiveState"])
	}
}

// testKillDuringReload: kill -9 of drover while `systemctl reload` waits:
// systemd restarts the service within seconds on 252 and 257 alike
// (drover sends RELOADING=1 only for SIGHUP, so systemd 257 is not left
// waiting in reload-notify for a READY=1 nobody will send).
func testKillDuringReload(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("--ready delay=3s", "")))
	b.startByConnection()
	oldMain := b.mainPid()
	reloaded := make(chan error, 1)
	go func() {
		_, err := b.m.Output(b.ctx, "systemctl", "reload", "myapp.service")
		reloaded <- err
	}()
	b.waitFor("the reload to be under way", 10*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "StatusText")["StatusText"]
		return strings.HasPrefix(st, "reloading:"), st
	})
	b.sh("kill", "-9", strconv.Itoa(oldMain))
	killed := time.Now()
	<-reloaded
	var back time.Duration
	b.waitFor("myapp.service back with a new drover", 20*time.Second, func() (bool, string) {
		st := b.show("myapp.service", "ActiveState", "SubState", "MainPID")
		if st["ActiveState"] == "active" && st["SubState"] == "running" && st["MainPID"] != strconv.Itoa(oldMain) && st["MainPID"] != "0" {
			back = time.Since(killed)
			return true, fmt.Sprint(st)
		}
		return false, fmt.Sprint(st)
	})
	r, err := b.get(10 * time.Second)
	if err != nil {
		b.t.Fatalf("no answer after drover came back: %v", err)
	}
	b.t.Logf("back %v after kill -9 mid-reload; answered: %s", back.Round(time.Millisecond), strings.TrimSpace(r.Body))
	if back > 10*time.Second {
		b.t.Errorf("back after %v, want within 10s", back.Round(time.Millisecond))
	}
}
