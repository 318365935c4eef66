package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// A generation that cannot be pinned (the runtime directory became
// unusable after start: full, removed, read-only) is exec'd by path with a
// warning, so the reload goes on instead of failing on the pin.
func TestReloadWithoutPinning(t *testing.T) {
	cfg, reports, script := versionedConfig(t, 2)
	cfg.RuntimeDir = t.TempDir()
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	// Under a regular file, MkdirAll fails with ENOTDIR, as root too (a
	// read-only mode would not stop root). Reload hands the change to the
	// loop over a channel, so the loop sees it.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.sup.pinDir = filepath.Join(file, "pins")
	installScript(t, script, fmt.Sprintf("DROVER_TEST_VERSION=v2 exec %s -mode report -report-dir %s", testworkerBin, reports))
	if err := h.sup.Reload(); err != nil {
		t.Fatalf("Reload with an unusable pin directory: %v", err)
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 2 · 0 restarts")
	warning := logrus.Fields{"generation": 2}
	if n := h.countEntries("cannot pin the worker command", warning); n != 1 {
		t.Errorf("%d warnings about the unpinned generation 2, want 1", n)
	}
	v2 := 0
	for _, r := range waitReports(t, h, 4) {
		if r.Env["DROVER_TEST_VERSION"] == "v2" && r.Env["DROVER_GENERATION"] == "2" {
			v2++
		}
	}
	if v2 != 2 {
		t.Errorf("%d workers of v2 in generation 2, want 2", v2)
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}

// countEntries counts the log entries whose message contains msg and that
// have the fields.
func (h *harness) countEntries(msg string, fields logrus.Fields) int {
	n := 0
	for _, e := range h.logs.AllEntries() {
		if !strings.Contains(e.Message, msg) {
			continue
		}
		match := true
		for k, v := range fields {
			if fmt.Sprint(e.Data[k]) != fmt.Sprint(v) {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// A drover killed with SIGKILL leaves its pin directory behind; the next
// one started in the same place removes it (named by a pid that is gone),
// and only that: not a live drover's, not one another drover still holds
// (its pid may be from another pid namespace sharing the directory), not
// another user's, not anything else.
func TestStalePinDirsAreRemoved(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid // reaped: kill(pid, 0) fails with ESRCH
	mkdir := func(name string) string {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(dir, "1"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/proc/1/fd/3", filepath.Join(dir, "1", "myapp")); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	stale := mkdir(fmt.Sprintf("drover-exe-%d-111", deadPid))
	kept := []string{
		mkdir(fmt.Sprintf("drover-exe-%d-222", os.Getpid())), // alive
		mkdir("drover-exe-333"),                              // no pid in its name
		mkdir(fmt.Sprintf("drover-other-%d-444", deadPid)),   // not drover's
	}
	held := mkdir(fmt.Sprintf("drover-exe-%d-555", deadPid))
	lock, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, held)
	if os.Geteuid() == 0 {
		foreign := mkdir(fmt.Sprintf("drover-exe-%d-666", deadPid))
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, foreign)
	}
	file := filepath.Join(parent, fmt.Sprintf("drover-exe-%d-777", deadPid))
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, file)

	cfg, _ := testConfig(t, 1, "report")
	cfg.RuntimeDir = parent
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.closeResources()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale pin directory %s of dead pid %d still there (%v)", stale, deadPid, err)
	}
	for _, path := range kept {
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s was removed: %v", path, err)
		}
	}
	if want := fmt.Sprintf("drover-exe-%d-", os.Getpid()); filepath.Dir(sup.pinDir) != parent || !strings.HasPrefix(filepath.Base(sup.pinDir), want) {
		t.Errorf("pin directory %s, want %s/%s*", sup.pinDir, parent, want)
	}
}
