package supervisor

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/control"
)

// controlRoundTrip sends raw bytes and returns the one-line answer.
func controlRoundTrip(t *testing.T, path string, raw []byte) string {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go conn.Write(raw)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read answer to %.40q: %v", raw, err)
	}
	return line
}

// The control socket is a boundary: only root and drover's user, and bad
// requests get an error, never a crash.
func TestControlSocket(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report")
	// Not t.TempDir(): its parent is private, and another user must be
	// able to reach the socket's file to show that credentials stop them.
	dir, err := os.MkdirTemp("", "drover-control-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.ControlSocket = filepath.Join(dir, "control.sock")
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	fi, err := os.Stat(cfg.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want 0600", fi.Mode().Perm())
	}
	for raw, want := range map[string]string{
		"not json\n":                            "malformed request",
		`{"command":"explode"}` + "\n":          `unknown command \"explode\"`,
		`{"command":"reload","extra":1}` + "\n": "unknown field",
		strings.Repeat("x", 64<<10+10):          "request longer than",
	} {
		if got := controlRoundTrip(t, cfg.ControlSocket, []byte(raw)); !strings.Contains(got, want) {
			t.Errorf("request %.30q answered %q, want %q", raw, got, want)
		}
	}
	if resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "reload"}, waitLimit); err != nil || !resp.OK {
		t.Fatalf("reload over the control socket: %+v %v", resp, err)
	}

	if os.Getuid() != 0 {
		t.Skip("the refusal of other users needs root to run a client as nobody")
	}
	// Even with the file opened up, another user is refused by credentials.
	os.Chmod(dir, 0o755)
	os.Chmod(cfg.ControlSocket, 0o666)
	os.Chmod(filepath.Dir(droverBin), 0o755) // so nobody can run the client
	client := exec.Command(droverBin, "reload", "--control", cfg.ControlSocket)
	client.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := client.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("nobody's drover reload: %v %q, want permission denied", err, out)
	}
	h.waitLogged(t, "control connection refused", nil)
}

// status reports every worker; scale adds slots gated on readiness and
// drains removed ones, and reloads keep the new count.
func TestStatusAndScale(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.ControlSocket = filepath.Join(t.TempDir(), "control.sock")
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "status"}, waitLimit)
	if err != nil || !resp.OK || resp.Status == nil {
		t.Fatalf("status: %+v %v", resp, err)
	}
	st := resp.Status
	if st.State != "serving" || st.Workers != 2 || st.Ready != 2 || len(st.Processes) != 2 || st.Pid != os.Getpid() {
		t.Fatalf("status %+v", st)
	}
	for _, p := range st.Processes {
		if p.State != "ready" || p.Pid == 0 || p.Generation != 1 || p.RSSBytes <= 0 || p.Started.IsZero() {
			t.Errorf("process %+v", p)
		}
	}

	for _, tc := range []struct{ count, status string }{
		{"+2", "STATUS=4/4 workers ready · generation 1 · 0 restarts"},
		{"-3", "STATUS=1/1 workers ready · generation 1 · 0 restarts"},
		{"2", "STATUS=2/2 workers ready · generation 1 · 0 restarts"},
	} {
		resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "scale", Count: tc.count}, waitLimit)
		if err != nil || !resp.OK {
			t.Fatalf("scale %s: %+v %v", tc.count, resp, err)
		}
		h.sd.waitFor(t, tc.status)
	}
	if !h.logged("draining worker", logrus.Fields{"worker": 3}) {
		t.Error("scale down did not drain the removed slot's worker")
	}
	for _, bad := range []string{"0", "-2", "x", "+0", "2000"} {
		if resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "scale", Count: bad}, waitLimit); err != nil || resp.OK {
			t.Errorf("scale %s: %+v %v, want refused", bad, resp, err)
		}
	}
	if err := h.sup.Reload(); err != nil {
		t.Fatal(err)
	}
	h.sd.waitFor(t, "STATUS=2/2 workers ready · generation 2 · 0 restarts")
}

// "logs" answers with the workers' last lines as drover printed them (dev
// mode: the text sink), for drover top without a journal.
func TestControlLogs(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.Command = append([]string{"/bin/sh", "-c", `echo "hello from slot $DROVER_WORKER_ID"; exec "$0" "$@"`}, cfg.Command...)
	cfg.ControlSocket = filepath.Join(t.TempDir(), "control.sock")
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	var lines []string
	// The lines are forwarded as they come, not before READY=1.
	for deadline := time.Now().Add(waitLimit); ; {
		resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "logs", Lines: 10}, waitLimit)
		if err != nil || !resp.OK {
			t.Fatalf("logs over the control socket: %+v %v", resp, err)
		}
		if lines = resp.Lines; len(lines) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := control.Call(cfg.ControlSocket, control.Request{Command: "status"}, waitLimit)
	if err != nil || !resp.OK {
		t.Fatalf("status over the control socket: %+v %v", resp, err)
	}
	for _, p := range resp.Status.Processes {
		want := fmt.Sprintf("[w%d %d] hello from slot %d", p.Slot, p.Pid, p.Slot)
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, " "+want) }) {
			t.Errorf("logs answered %q; want a line ending %q", lines, want)
		}
	}
}
