package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// installScript atomically installs a worker script at path, as a package
// manager would (write, then rename over the old one).
func installScript(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// versionedConfig runs workers through a script that marks its version in
// the environment the workers report.
func versionedConfig(t *testing.T, n int) (Config, string, string) {
	cfg, reports := testConfig(t, n, "report")
	script := filepath.Join(t.TempDir(), "myapp")
	installScript(t, script, fmt.Sprintf("DROVER_TEST_VERSION=v1 exec %s -mode report -report-dir %s", testworkerBin, reports))
	cfg.Command = []string{script}
	return cfg, reports, script
}

// entryIndex is the position of the first log entry with msg and fields.
func (h *harness) entryIndex(t *testing.T, msg string, fields logrus.Fields) int {
	t.Helper()
	i := h.findEntry(msg, fields, true)
	if i < 0 {
		t.Fatalf("no log entry %q %v", msg, fields)
	}
	return i
}

// A reload replaces every worker with one of the program now on disk, one
// slot at a time: each new worker ready before the old one drains.
func TestReloadIsStaged(t *testing.T) {
	cfg, reports, script := versionedConfig(t, 2)
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	old := h.reportsNow(t)

	installScript(t, script, fmt.Sprintf("DROVER_TEST_VERSION=v2 exec %s -mode report -report-dir %s", testworkerBin, reports))
	if err := h.sup.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	reloading := h.sd.waitFor(t, "RELOADING=1")
	if !hasLine(reloading, "MONOTONIC_USEC=*") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC (Type=notify-reload would hang): %q", reloading)
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 2 · 0 restarts")

	// Each slot: new worker ready, then the old one drains; with batch 1 the
	// second new worker starts only after the first is ready.
	for slot := range 2 {
		ready := h.entryIndex(t, "worker ready", logrus.Fields{"worker": slot, "generation": 2})
		drain := h.entryIndex(t, "draining worker", logrus.Fields{"worker": slot, "generation": 1})
		if ready > drain {
			t.Errorf("slot %d: old worker drained before its replacement was ready", slot)
		}
	}
	if h.entryIndex(t, "worker started", logrus.Fields{"worker": 1, "generation": 2}) < h.entryIndex(t, "worker ready", logrus.Fields{"worker": 0, "generation": 2}) {
		t.Error("second new worker started before the first was ready (batch 1)")
	}
	for pid, r := range waitReports(t, h, 4) {
		if _, isOld := old[pid]; isOld {
			continue
		}
		if r.Env["DROVER_TEST_VERSION"] != "v2" || r.Env["DROVER_GENERATION"] != "2" {
			t.Errorf("new worker %d: version %s generation %s", pid, r.Env["DROVER_TEST_VERSION"], r.Env["DROVER_GENERATION"])
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	assertGone(t, h)
}

// A broken new version never replaces a working one: the reload fails, the
// old workers keep serving untouched, systemd hears READY=1 with the reason.
func TestReloadKeepsOldVersionWhenNewFails(t *testing.T) {
	cfg, reports, script := versionedConfig(t, 2)
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	old := h.reportsNow(t)

	installScript(t, script, fmt.Sprintf("exec %s -mode crash", testworkerBin))
	err := h.sup.Reload()
	if err == nil || !strings.Contains(err.Error(), "reload failed: worker 0 of generation 2: exit status 3; serving generation 1") {
		t.Fatalf("Reload = %v, want the new worker's failure", err)
	}
	msg := h.sd.waitFor(t, "STATUS=reload failed: worker 0 of generation 2: exit status 3; serving generation 1 · 2/2 workers ready · 0 restarts")
	if !hasLine(msg, "READY=1") || !hasLine(msg, fmt.Sprintf("ERRNO=%d", unix.ECHILD)) {
		t.Errorf("failed reload told systemd %q", msg)
	}
	for pid := range old {
		if unix.Kill(pid, 0) != nil {
			t.Errorf("old worker %d did not survive the failed reload", pid)
		}
	}
	// A worker that fails after the failed reload restarts as the version
	// that works (pinned), not the broken file now on disk.
	var victim int
	for pid := range old {
		victim = pid
	}
	unix.Kill(victim, unix.SIGKILL)
	h.sd.waitFor(t, "STATUS=reload failed: worker 0 of generation 2: exit status 3; serving generation 1 · 2/2 workers ready · 1 restarts")
	for pid, r := range waitReports(t, h, 3) {
		if _, isOld := old[pid]; !isOld && r.Env["DROVER_TEST_VERSION"] != "v1" {
			t.Errorf("restarted worker %d runs %q, want the pinned v1", pid, r.Env["DROVER_TEST_VERSION"])
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}

// A failure midway rolls the slots that had moved back to the old version.
func TestReloadRollsBackMovedSlots(t *testing.T) {
	cfg, reports, script := versionedConfig(t, 3)
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	installScript(t, script, fmt.Sprintf(`if [ "$DROVER_WORKER_ID" = 1 ]; then exec %s -mode crash; fi
DROVER_TEST_VERSION=v2 exec %s -mode report -report-dir %s`, testworkerBin, testworkerBin, reports))
	if err := h.sup.Reload(); err == nil || !strings.Contains(err.Error(), "worker 1 of generation 2") {
		t.Fatalf("Reload = %v, want slot 1's failure", err)
	}
	// Every slot is served by a live v1 worker again, once the moved
	// slot's v2 worker has drained.
	var versions map[string]string
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		versions = map[string]string{}
		live := 0
		for pid, r := range h.reportsNow(t) {
			if unix.Kill(pid, 0) == nil {
				live++
				versions[r.Env["DROVER_WORKER_ID"]] = r.Env["DROVER_TEST_VERSION"]
			}
		}
		if live == 3 {
			break
		}
	}
	if fmt.Sprint(versions) != "map[0:v1 1:v1 2:v1]" {
		t.Errorf("live workers after the rollback: %v, want v1 in every slot", versions)
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	assertGone(t, h)
}

func TestParseBatch(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "3": 3, "50%": 4, "1%": 1, "100%": 8, "20": 8} {
		b, err := ParseBatch(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := b.of(8); got != want {
			t.Errorf("batch %s of 8 = %d, want %d", in, got, want)
		}
	}
	for _, bad := range []string{"0", "-1", "0%", "101%", "x", ""} {
		if _, err := ParseBatch(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseBatch(%q) = %v, want a usage error", bad, err)
		}
	}
}
