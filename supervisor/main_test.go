package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/droverd/drover/supervisor/sockets"
	"github.com/droverd/drover/testdata/testbin"
)

// Built once for all tests: testdata/testworker, and drover itself, whose
// binary is the trampoline. The test binary could be its own trampoline,
// but built with -race its runtime opens fds that would leak into workers
// and hide a real leak.
var testworkerBin, droverBin string

func TestMain(m *testing.M) {
	testbin.Main(m, map[*string]string{&testworkerBin: testbin.Testworker, &droverBin: testbin.Drover})
}

// waitLimit bounds every wait in these tests; it is a hang guard, not a
// timing assertion, so it is generous for a loaded machine.
const waitLimit = 30 * time.Second

// fakeSystemd is a NOTIFY_SOCKET in a temp dir that records every datagram.
type fakeSystemd struct {
	path string
	mu   sync.Mutex
	msgs []string
	more chan struct{} // signalled on each datagram
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	f := &fakeSystemd{path: filepath.Join(t.TempDir(), "notify"), more: make(chan struct{}, 1)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, string(buf[:n]))
			f.mu.Unlock()
			select {
			case f.more <- struct{}{}:
			default:
			}
		}
	}()
	return f
}

func (f *fakeSystemd) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...)
}

// waitFor returns the first datagram (from the start) that has the line.
func (f *fakeSystemd) waitFor(t *testing.T, line string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		for _, m := range f.all() {
			if hasLine(m, line) {
				return m
			}
		}
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("systemd never got %q; got %q", line, f.all())
		}
	}
}

func hasLine(msg, line string) bool {
	for l := range strings.SplitSeq(msg, "\n") {
		if l == line || (strings.HasSuffix(line, "*") && strings.HasPrefix(l, strings.TrimSuffix(line, "*"))) {
			return true
		}
	}
	return false
}

// harness runs one Supervisor in the test process.
type harness struct {
	sup     *Supervisor
	sd      *fakeSystemd
	logs    *logtest.Hook
	reports string // testworker -report-dir
	cancel  context.CancelFunc
	done    chan error
}

// testConfig is a config for n testworkers in mode on one fresh socket.
func testConfig(t *testing.T, n int, mode string, extra ...string) (Config, string) {
	reports := t.TempDir()
	return Config{
		Command:      append([]string{testworkerBin, "-mode", mode, "-report-dir", reports}, extra...),
		Workers:      n,
		Listen:       []sockets.ListenSpec{{Name: "web", Network: "tcp", Address: "127.0.0.1:0"}},
		ReadyTimeout: 10 * time.Second,
		Trampoline:   droverBin,
		StopTimeout:  10 * time.Second,
	}, reports
}

func start(t *testing.T, cfg Config, reports string) *harness {
	t.Helper()
	return startWith(t, cfg, reports, nil)
}

// startWith runs the supervisor with e in place of real processes (nil:
// real ones).
func startWith(t *testing.T, cfg Config, reports string, e env) *harness {
	t.Helper()
	return startPrepared(t, cfg, reports, e, nil)
}

// startPrepared is startWith with prepare (if not nil) called between New
// and Run: a test can see the sockets New opened, and set the workers'
// environment from them.
func startPrepared(t *testing.T, cfg Config, reports string, e env, prepare func(*Supervisor)) *harness {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	cfg.Log = logger
	h := &harness{sd: newFakeSystemd(t), logs: hook, reports: reports, done: make(chan error, 1)}
	cfg.NotifySocket = h.sd.path
	sup, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sup = sup
	if e != nil {
		sup.env = e
	}
	if prepare != nil {
		prepare(sup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(waitLimit):
			t.Errorf("supervisor did not stop")
		}
		if t.Failed() {
			for _, e := range hook.AllEntries() {
				line, _ := e.String()
				t.Log(strings.TrimSpace(line))
			}
		}
	})
	return h
}

// stop cancels Run and returns its error.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	return h.wait(t)
}

func (h *harness) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}
	return nil
}

// report mirrors testworker's Report.
type report struct {
	Pid int               `json:"pid"`
	Fds map[int]string    `json:"fds"`
	Env map[string]string `json:"env"`
}

// reportsNow reads every worker report written so far, by pid.
func (h *harness) reportsNow(t *testing.T) map[int]report {
	t.Helper()
	out := map[int]report{}
	files, _ := filepath.Glob(filepath.Join(h.reports, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[r.Pid] = r
	}
	return out
}

// findEntry returns the index of the first log entry whose message
// contains msg (equals it, if exact) and that has the fields, or -1.
func (h *harness) findEntry(msg string, fields logrus.Fields, exact bool) int {
	for i, e := range h.logs.AllEntries() {
		if (exact && e.Message != msg) || !strings.Contains(e.Message, msg) {
			continue
		}
		match := true
		for k, v := range fields {
			if fmt.Sprint(e.Data[k]) != fmt.Sprint(v) {
				match = false
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// logged reports whether a log entry with that message (and fields) exists.
func (h *harness) logged(msg string, fields logrus.Fields) bool {
	return h.findEntry(msg, fields, false) >= 0
}

func (h *harness) waitLogged(t *testing.T, msg string, fields logrus.Fields) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !h.logged(msg, fields) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q %v", msg, fields)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get makes one request on a new connection and returns the body.
func get(t *testing.T, addr string) string { return call(t, addr, "/") }

// call makes one request for path on a new connection and returns the
// body.
func call(t *testing.T, addr, path string) string {
	t.Helper()
	client := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	return string(b)
}
