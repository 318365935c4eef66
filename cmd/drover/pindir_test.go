package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// kill -9 of a dev-mode drover leaves its pin directory in $TMPDIR; the
// next drover started there removes it, so they do not pile up.
func TestKilledDroversPinDirIsRemoved(t *testing.T) {
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp, "RUNTIME_DIRECTORY="}
	pinDirOf := func(p *started) string {
		t.Helper()
		dirs, _ := filepath.Glob(filepath.Join(tmp, fmt.Sprintf("drover-exe-%d-*", p.cmd.Process.Pid)))
		if len(dirs) != 1 {
			t.Fatalf("drover %d has %d pin directories in $TMPDIR: %q", p.cmd.Process.Pid, len(dirs), dirs)
		}
		return dirs[0]
	}
	drover := func() *started {
		p := startProcessEnv(t, env, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "1", "--", bin.example)
		p.stderr.waitFor(t, "all 1 workers ready")
		return p
	}

	first := drover()
	firstDir := pinDirOf(first)
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.wait(t)
	if _, err := os.Stat(firstDir); err != nil {
		t.Fatalf("kill -9 left no pin directory to clean up (%v): the test proves nothing", err)
	}

	second := drover()
	if _, err := os.Stat(firstDir); !os.IsNotExist(err) {
		t.Errorf("the killed drover's pin directory %s is still there after the next start (%v)", firstDir, err)
	}
	second.stderr.waitFor(t, "removed the pin directory of a drover that is gone")
	secondDir := pinDirOf(second)
	second.cmd.Process.Signal(syscall.SIGTERM)
	if code := second.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(secondDir); !os.IsNotExist(err) {
		t.Errorf("drover stopped normally but left %s (%v)", secondDir, err)
	}
}
