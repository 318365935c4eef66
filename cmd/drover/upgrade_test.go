package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/testdata/testbin"
)

// buildDrover builds drover with a version stamp.
func buildDrover(t *testing.T, version string) string {
	return buildStamped(t, ".", "drover", version)
}

// upgradeRig is a dev-mode drover started from a binary of its own that
// a test replaces as a package would.
type upgradeRig struct {
	drover, control, addr string
	p                     *started
}

func startUpgradeRig(t *testing.T, flags ...string) *upgradeRig {
	t.Helper()
	return startUpgradeRigCmd(t, "127.0.0.1:0", []string{bin.example}, flags...)
}

func startUpgradeRigCmd(t *testing.T, listen string, command []string, flags ...string) *upgradeRig {
	t.Helper()
	dir := t.TempDir()
	r := &upgradeRig{drover: filepath.Join(dir, "drover"), control: filepath.Join(dir, "control.sock")}
	install(t, bin.drover, r.drover)
	args := append([]string{"run", "--listen", listen, "--workers", "2", "--control", r.control}, flags...)
	r.p = startProcess(t, r.drover, append(append(args, "--"), command...)...)
	r.addr = regexp.MustCompile(`sockets="?([0-9.:]+)`).FindStringSubmatch(r.p.stderr.waitFor(t, "starting workers"))[1]
	r.p.stderr.waitFor(t, "all 2 workers ready")
	return r
}

func (r *upgradeRig) status(t *testing.T) *control.Status {
	t.Helper()
	st, err := statusAt(r.control)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStatus polls drover's status until done says so.
func (r *upgradeRig) waitStatus(t *testing.T, done func(*control.Status) bool) *control.Status {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st := r.status(t)
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("drover's status never got there: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *upgradeRig) upgrade(t *testing.T) (string, error) {
	t.Helper()
	out, err := exec.Command(bin.drover, "upgrade", "--control", r.control).CombinedOutput()
	return string(out), err
}

func pids(st *control.Status) []int {
	var out []int
	for _, p := range st.Processes {
		out = append(out, p.Pid)
	}
	slices.Sort(out)
	return out
}

// The new binary takes over in the same process under load: same pid,
// same workers, the new version in drover status, no failed request,
// counters carried; the adopted workers are still watched (a kill -9 is
// healed) and a reload right after works.
func TestUpgradeInPlace(t *testing.T) {
	v2 := buildDrover(t, "v2-upgrade-test")
	r := startUpgradeRig(t, "--metrics-listen", "127.0.0.1:0")
	before := r.status(t)
	// A restart before, to see the counter carried.
	if err := syscall.Kill(before.Processes[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before = r.waitStatus(t, func(st *control.Status) bool { return st.Restarts == 1 && st.Ready == 2 })

	l := testbin.StartLoad(r.addr)
	install(t, v2, r.drover)
	start := time.Now()
	out, err := r.upgrade(t)
	if err != nil {
		t.Fatalf("drover upgrade: %v\n%s", err, out)
	}
	t.Logf("drover upgrade took %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	after := r.status(t)
	l.End(t)
	switch {
	case after.Pid != before.Pid:
		t.Errorf("drover's pid %d -> %d", before.Pid, after.Pid)
	case after.Version != "v2-upgrade-test" || after.UpgradedFrom != before.Version || after.Upgraded.IsZero():
		t.Errorf("after the upgrade: version %q from %q at %v", after.Version, after.UpgradedFrom, after.Upgraded)
	case !slices.Equal(pids(after), pids(before)):
		t.Errorf("workers %v -> %v: the upgrade touched them", pids(before), pids(after))
	case after.Restarts != before.Restarts || after.Generation != before.Generation:
		t.Errorf("restarts %d -> %d, generation %d -> %d", before.Restarts, after.Restarts, before.Generation, after.Generation)
	}
	if !strings.Contains(out, "upgraded drover "+before.Version+" -> v2-upgrade-test in place") {
		t.Errorf("drover upgrade said %q", out)
	}

	// Still watched: a kill -9 is healed in its slot.
	victim := after.Processes[1]
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(t, func(st *control.Status) bool { return st.Restarts == before.Restarts+1 && st.Ready == 2 })
	if out, err := exec.Command(bin.drover, "reload", "--control", r.control).CombinedOutput(); err != nil {
		t.Fatalf("drover reload after the upgrade: %v\n%s", err, out)
	}
	if st := r.status(t); st.Generation != 2 || st.Pid != before.Pid {
		t.Errorf("after the reload: generation %d, pid %d", st.Generation, st.Pid)
	}
}

// A new binary that cannot take over is refused before anything is
// handed over: drover keeps running as it was, with the same workers.
func TestUpgradeRefused(t *testing.T) {
	r := startUpgradeRig(t)
	before := r.status(t)
	script := func(body string) string {
		path := filepath.Join(t.TempDir(), "drover")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, c := range []struct {
		name, binary, want string
	}{
		{"broken", script("echo segfault >&2; exit 139"), "does not answer upgrade-check"},
		{"not-drover", script("echo hello"), "does not answer upgrade-check"},
		{"newer-format", script(`echo '{"version":"v9","handover_formats":[2,3]}'`), "reads handover formats [2 3], this drover writes 1"},
		{"missing", "", "does not answer upgrade-check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.binary == "" {
				os.Remove(r.drover)
			} else {
				install(t, c.binary, r.drover)
			}
			out, err := r.upgrade(t)
			if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("drover upgrade: %v, %q; want one line with %q", err, out, c.want)
			}
			st := r.status(t)
			if st.Pid != before.Pid || st.Version != before.Version || !slices.Equal(pids(st), pids(before)) || st.Ready != 2 {
				t.Errorf("after a refused upgrade: %+v", st)
			}
		})
	}
	ask(t, r.addr)
}

// Only a steady state is handed over: during a reload or a restart
// backoff the upgrade is refused with the reason.
func TestUpgradeRefusedWhileBusy(t *testing.T) {
	r := startUpgradeRig(t, "--ready", "delay=1500ms", "--min-uptime", "1h", "--backoff-min", "3s")
	install(t, bin.drover, r.drover)
	reload := exec.Command(bin.drover, "reload", "--control", r.control)
	if err := reload.Start(); err != nil {
		t.Fatal(err)
	}
	r.p.stderr.waitFor(t, "reloading: starting the new generation")
	out, err := r.upgrade(t)
	if err == nil || !strings.Contains(out, "upgrade refused: drover is reloading; try again in a moment") {
		t.Errorf("upgrade during a reload: %v %q", err, out)
	}
	if err := reload.Wait(); err != nil {
		t.Fatalf("the reload failed: %v", err)
	}
	st := r.status(t)
	if err := syscall.Kill(st.Processes[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.p.stderr.waitFor(t, "restarting worker")
	out, err = r.upgrade(t)
	if err == nil || !strings.Contains(out, "is not ready (starting or backing off)") {
		t.Errorf("upgrade during a backoff: %v %q", err, out)
	}
}

// Node workers keep their IPC channel across the upgrade: with
// --worker-watchdog, their heartbeats reach the new image (none is taken
// for hung) and they still serve.
func TestUpgradeNodeWorkers(t *testing.T) {
	node := testbin.Tool(t, "node")
	addr := freePort(t)
	_, port, _ := strings.Cut(addr, ":")
	t.Setenv("PORT", port) // plain.js listens on $PORT, as a PM2 app would
	r := startUpgradeRigCmd(t, addr, []string{node, "../../testdata/node-apps/plain.js"}, "--node", "--worker-watchdog", "1s")
	before := r.status(t)
	if out, err := r.upgrade(t); err != nil {
		t.Fatalf("drover upgrade: %v\n%s", err, out)
	}
	// Heartbeats reach the new image: each worker pings after it took
	// over, twice over (a lost channel would make them hung in 1s).
	var after *control.Status
	for range 2 {
		mark := time.Now()
		after = r.waitStatus(t, func(st *control.Status) bool {
			for _, p := range st.Processes {
				if !p.LastPing.After(mark) {
					return false
				}
			}
			return true
		})
	}
	if after.Pid != before.Pid || !slices.Equal(pids(after), pids(before)) || after.Restarts != 0 || after.Ready != 2 {
		t.Errorf("node workers after the upgrade: %+v (before %v)", after, pids(before))
	}
	resp, err := http.Get("http://" + r.addr + "/")
	if err != nil {
		t.Fatalf("GET after the upgrade: %v", err)
	}
	resp.Body.Close()
}
