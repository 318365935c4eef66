package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
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
