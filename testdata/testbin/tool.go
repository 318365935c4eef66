package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tool finds a program the test setup installs (make deps), such as
// promtool or tmux: on PATH, or in $DROVER_TOOLS_PATH (where make deps
// unpacks packages it does not install). Without it the test is skipped
// when run alone, and fails under make test, which sets
// DROVER_REQUIRE_TOOLS so that a missing tool cannot pass as a skip.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if path, ok := LookTool(name); ok {
		return path
	}
	if Required() {
		t.Fatalf("%s not found (make deps installs it)", name)
	}
	t.Skipf("%s not found: run make deps", name)
	return ""
}

// LookTool finds a program as Tool does, for a test that can do part of
// its work without it.
func LookTool(name string) (string, bool) {
	if path, err := exec.LookPath(name); err == nil {
		return path, true
	}
	for _, dir := range filepath.SplitList(os.Getenv("DROVER_TOOLS_PATH")) {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return path, true
		}
	}
	return "", false
}

// Required reports whether a missing tool is a failure (make test) rather
// than a reason to skip.
func Required() bool { return os.Getenv("DROVER_REQUIRE_TOOLS") != "" }

// NodeModules installs the npm packages (express@4) with npm, from the
// registry, and returns the node_modules directory, for NODE_PATH. The
// install is kept in /var/cache/drover-tools/npm, one directory per
// package list, shared by test binaries that run at once (a lock), and
// made afresh in a temp directory where the cache is not writable. npm
// is a tool as for Tool: missing, the test skips, or fails under make
// test.
func NodeModules(t testing.TB, pkgs ...string) string {
	t.Helper()
	npm := Tool(t, "npm")
	dir := filepath.Join(nodeModulesCache, strings.Join(pkgs, "+"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		dir = t.TempDir()
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		dir = t.TempDir()
	} else {
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatalf("lock %s: %v", dir, err)
		}
	}
	done := filepath.Join(dir, ".installed")
	if _, err := os.Stat(done); err == nil {
		return filepath.Join(dir, "node_modules")
	}
	args := append([]string{"install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir}, pkgs...)
	if out, err := exec.Command(npm, args...).CombinedOutput(); err != nil {
		t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "node_modules")
}

const nodeModulesCache = "/var/cache/drover-tools/npm"
