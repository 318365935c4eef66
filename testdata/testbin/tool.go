package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool finds a program the test setup installs (make deps), such as
// promtool or tmux: on PATH, or in $DROVER_TOOLS_PATH (where make deps
// unpacks packages it does not install). Without it the test is skipped
// when run alone, and fails under make test, which sets
// DROVER_REQUIRE_TOOLS so that a missing tool cannot pass as a skip.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range filepath.SplitList(os.Getenv("DROVER_TOOLS_PATH")) {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	if os.Getenv("DROVER_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s not found (make deps installs it)", name)
	}
	t.Skipf("%s not found: run make deps", name)
	return ""
}
