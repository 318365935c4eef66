package supervisor

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/sockets"
)

// Every worker must see exactly what systemd gives one process: the
// sockets at fds 3.. in order, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID equal
// to its own pid, and nothing of drover's.
func TestWorkersGetSocketsAsFromSystemd(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.Listen = []sockets.ListenSpec{
		{Name: "web", Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "admin", Network: "unix", Address: t.TempDir() + "/admin.sock"},
	}
	cfg.Environ = []string{
		"PATH=" + os.Getenv("PATH"), "KEEP_ME=yes",
		"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000000", "WATCHDOG_PID=1",
		"LISTEN_FDS=7", "LISTEN_PID=1", "LISTEN_FDNAMES=x", "LISTEN_PIDFDID=42", "DROVER_TEST_HOOKS=stall-on-sigusr2",
		"SYSTEMD_EXEC_PID=1", "FDSTORE=8",
	}
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	inodes := map[int]string{}
	for i, s := range h.sup.sockets {
		inodes[3+i] = fmt.Sprintf("socket:[%d]", s.Inode)
	}
	got := h.reportsNow(t)
	if len(got) != 2 {
		t.Fatalf("want reports from 2 workers, got %d", len(got))
	}
	ids := map[string]bool{}
	for pid, r := range got {
		wantEnv := map[string]string{
			"LISTEN_FDS":        "2",
			"LISTEN_FDNAMES":    "web:admin",
			"LISTEN_PID":        strconv.Itoa(pid),
			"SYSTEMD_EXEC_PID":  strconv.Itoa(pid),
			"DROVER_GENERATION": "1",
		}
		for k, v := range wantEnv {
			if r.Env[k] != v {
				t.Errorf("worker %d: %s=%q, want %q", pid, k, r.Env[k], v)
			}
		}
		for _, k := range []string{"WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PIDFDID", "DROVER_TEST_HOOKS", "FDSTORE"} {
			if v, ok := r.Env[k]; ok {
				t.Errorf("worker %d: %s=%q leaked from drover's environment", pid, k, v)
			}
		}
		if ns := r.Env["NOTIFY_SOCKET"]; !strings.HasPrefix(ns, "@drover/") {
			t.Errorf("worker %d: NOTIFY_SOCKET=%q, want drover's own socket, not systemd's", pid, ns)
		}
		ids[r.Env["DROVER_WORKER_ID"]] = true
		for fd, target := range r.Fds {
			switch {
			case fd <= 2:
			case inodes[fd] != "":
				if target != inodes[fd] {
					t.Errorf("worker %d: fd %d is %s, want %s", pid, fd, target, inodes[fd])
				}
			case target == "anon_inode:[eventpoll]", target == "anon_inode:[eventfd]", strings.HasPrefix(target, "/sys/fs/cgroup/"):
				// the worker's own Go runtime
			default:
				t.Errorf("worker %d: fd %d (%s) leaked into the worker", pid, fd, target)
			}
		}
		for fd := range inodes {
			if _, ok := r.Fds[fd]; !ok {
				t.Errorf("worker %d: fd %d missing", pid, fd)
			}
		}
	}
	if !ids["0"] || !ids["1"] {
		t.Errorf("DROVER_WORKER_ID values %v, want 0 and 1", ids)
	}
	if body := get(t, h.sup.Addrs()[0]); !strings.Contains(body, `"pid"`) {
		t.Errorf("GET: %q", body)
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// systemd hears READY=1 only once every worker is ready, a status line it
// can show, STOPPING=1 and a stop timeout extension on stop, and watchdog
// pings from the loop.
func TestNotifiesSystemd(t *testing.T) {
	cfg, reports := testConfig(t, 2, "notify", "-delay", "200ms")
	cfg.Ready = Readiness{Mode: ReadyNotify}
	cfg.WatchdogInterval = 100 * time.Millisecond
	h := start(t, cfg, reports)

	ready := h.sd.waitFor(t, "READY=1")
	if !hasLine(ready, "STATUS=2/2 workers ready · generation 1 · 0 restarts") {
		t.Errorf("READY=1 came with %q", ready)
	}
	for _, m := range h.sd.all() {
		if m == ready {
			break
		}
		if hasLine(m, "STATUS=2/2*") {
			t.Errorf("status said all ready before READY=1: %q", m)
		}
	}
	if len(h.reportsNow(t)) != 2 {
		t.Errorf("READY=1 before both workers ran")
	}
	h.sd.waitFor(t, "WATCHDOG=1")
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopping := h.sd.waitFor(t, "STOPPING=1")
	if !hasLine(stopping, "EXTEND_TIMEOUT_USEC=15000000") {
		t.Errorf("STOPPING=1 without the drain's timeout extension: %q", stopping)
	}
	// Workers' own STATUS= is theirs, not systemd's.
	for _, m := range h.sd.all() {
		if hasLine(m, "STATUS=testworker ready") {
			t.Errorf("a worker's STATUS reached systemd: %q", m)
		}
	}
}

func TestReadyModes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  string
		ready Readiness
	}{
		{"listen with epoll", "report", Readiness{Mode: ReadyListen}},
		{"listen with blocking accept", "blocking-accept", Readiness{Mode: ReadyListen}},
		{"notify", "notify", Readiness{Mode: ReadyNotify}},
		{"delay", "never-ready", Readiness{Mode: ReadyDelay, Delay: 300 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, reports := testConfig(t, 1, tc.mode)
			cfg.Ready = tc.ready
			h := start(t, cfg, reports)
			h.sd.waitFor(t, "READY=1")
			if !h.logged("worker ready", logrus.Fields{"how": tc.ready.Mode}) {
				t.Errorf("not logged as ready by %s", tc.ready.Mode)
			}
			if err := h.stop(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// A worker that never gets ready fails the start, with the reason, so that
// `systemctl start` fails instead of hanging.
func TestNeverReadyFailsStart(t *testing.T) {
	for _, ready := range []Readiness{{Mode: ReadyListen}, {Mode: ReadyNotify}} {
		t.Run(string(ready.Mode), func(t *testing.T) {
			cfg, reports := testConfig(t, 2, "never-ready")
			cfg.Ready = ready
			cfg.ReadyTimeout = 500 * time.Millisecond
			h := start(t, cfg, reports)
			if ready.Mode == ReadyNotify {
				// A READY=1 from anyone but the worker itself must not count.
				waitReports(t, h, 2)
				for _, r := range h.reportsNow(t) {
					sendNotify(t, r.Env["NOTIFY_SOCKET"], "READY=1")
				}
			}
			err := h.wait(t)
			if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "not ready within --ready-timeout 500ms") {
				t.Fatalf("Run = %v, want a failed start naming the ready timeout", err)
			}
			if m := h.sd.all(); hasAny(m, "READY=1") {
				t.Errorf("systemd was told READY=1: %q", m)
			}
			h.sd.waitFor(t, "STATUS=failed: start failed: worker *")
			assertGone(t, h)
		})
	}
}

func waitReports(t *testing.T, h *harness, n int) map[int]report {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		r := h.reportsNow(t)
		if len(r) >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d worker reports, want %d", len(r), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasAny(msgs []string, line string) bool {
	for _, m := range msgs {
		if hasLine(m, line) {
			return true
		}
	}
	return false
}

func sendNotify(t *testing.T, addr, msg string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	name := addr
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:]
	}
	if err := unix.Sendto(fd, []byte(msg), 0, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatalf("send %q to %s: %v", msg, addr, err)
	}
}

// assertGone checks that no worker the test saw is still alive.
func assertGone(t *testing.T, h *harness) {
	t.Helper()
	for pid := range h.reportsNow(t) {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("worker %d still exists after Run returned (kill 0: %v)", pid, err)
		}
	}
}

func TestUnexecutableCommandFailsAtOnce(t *testing.T) {
	script := t.TempDir() + "/bad-interpreter"
	if err := os.WriteFile(script, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, reports := testConfig(t, 2, "report")
	cfg.Command = []string{script}
	h := start(t, cfg, reports)
	err := h.wait(t)
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "exec "+script+": no such file or directory") {
		t.Fatalf("Run = %v, want the exec error", err)
	}
}

// A worker killed after drover is ready is restarted in its slot; systemd
// sees the restart count.
func TestKilledWorkerIsRestartedInItsSlot(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	before := h.reportsNow(t)
	var victim report
	for _, r := range before {
		victim = r
	}
	if err := unix.Kill(victim.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 1 · 1 restarts")
	after := waitReports(t, h, 3)
	var replacement report
	for pid, r := range after {
		if _, old := before[pid]; !old {
			replacement = r
		}
	}
	if replacement.Env["DROVER_WORKER_ID"] != victim.Env["DROVER_WORKER_ID"] {
		t.Errorf("replacement took slot %s, the killed worker had %s", replacement.Env["DROVER_WORKER_ID"], victim.Env["DROVER_WORKER_ID"])
	}
	if !h.logged("worker failed", logrus.Fields{"pid": victim.Pid, "exit": "killed by SIGKILL"}) {
		t.Error("the kill was not logged with its signal")
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertGone(t, h)
}

// A slot that keeps failing backs off exponentially, then is a crash loop:
// drover stops with the reason so systemd's Restart= decides.
func TestCrashLoopBacksOffThenStops(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report", "-exit-after", "1s")
	cfg.BackoffMin = 50 * time.Millisecond
	cfg.MinUptime = time.Hour // every failure is a quick one
	cfg.MaxFailures = 4
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	err := h.wait(t)
	if !errors.Is(err, ErrCrashLoop) || !strings.Contains(err.Error(), "worker 0 failed 4 times within 1m0s; last: exit status 3") {
		t.Fatalf("Run = %v, want a crash loop", err)
	}
	var delays []string
	for _, e := range h.logs.AllEntries() {
		if e.Message == "restarting worker" {
			delays = append(delays, fmt.Sprint(e.Data["in"]))
		}
	}
	if got, want := strings.Join(delays, " "), "50ms 100ms 200ms"; got != want {
		t.Errorf("backoff delays %q, want %q", got, want)
	}
	h.sd.waitFor(t, "STATUS=failed: crash loop: worker 0 failed 4 times*")
}

// A worker that ignores the stop signal is killed at the stop timeout, and
// the stop still succeeds.
func TestStopTimeoutKills(t *testing.T) {
	cfg, reports := testConfig(t, 2, "ignore-term")
	cfg.StopTimeout = 300 * time.Millisecond
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !h.logged("sending SIGKILL", nil) {
		t.Error("SIGKILL at the stop timeout not logged")
	}
	assertGone(t, h)
}

// The stop signal is configurable (PM2 sends SIGINT, nginx drains on QUIT).
func TestStopSignal(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report")
	cfg.StopSignal = syscall.SIGINT
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !h.logged("draining workers", logrus.Fields{"signal": "SIGINT"}) || !h.logged("worker exited", logrus.Fields{"exit": "exit status 0"}) {
		t.Error("worker not drained with SIGINT")
	}
}

// drover leaks no fds: everything it opened is closed when Run returns.
func TestNoFDLeak(t *testing.T) {
	runOnce := func(t *testing.T) {
		cfg, reports := testConfig(t, 2, "report")
		h := start(t, cfg, reports)
		h.sd.waitFor(t, "READY=1")
		if err := h.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	// The first run lets the Go runtime open what it keeps (its poller).
	t.Run("warm-up", runOnce)
	before := openFDs(t)
	t.Run("first", runOnce)
	t.Run("second", runOnce)
	if after := openFDs(t); !maps.Equal(before, after) {
		t.Errorf("fds before: %v\nafter: %v", before, after)
	}
}

func openFDs(t *testing.T) map[string]string {
	t.Helper()
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, name := range names {
		if target, err := os.Readlink("/proc/self/fd/" + name); err == nil {
			fds[name] = target
		}
	}
	return fds
}
