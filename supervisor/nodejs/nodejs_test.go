package nodejs

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/testbin"
)

const waitLimit = 30 * time.Second

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		line string
		want map[string]string
	}{
		{`"ready"` + "\n", map[string]string{"READY": "1"}},
		{`{"drover":"watchdog"}` + "\n", map[string]string{"WATCHDOG": "1"}},
		{`"READY"`, nil},
		{`{"cmd":"NODE_HANDLE","type":"net.Socket"}`, nil},
		{`{"type":"process:msg","data":{"ready":true}}`, nil},
		{`{"drover":"status"}`, nil},
		{`ready`, nil},
		{``, nil},
		{`["ready"]`, nil},
	} {
		if got := Parse([]byte(tc.line)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`"ready"`))
	f.Add([]byte(`{"drover":"watchdog"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range Parse(b) {
			if k != "READY" && k != "WATCHDOG" {
				t.Fatalf("Parse(%q) set %q", b, k)
			}
		}
	})
}

// Read hands on what it knows, skips what it does not and lines too long
// to hold, whole, and returns the reader's error at the end.
func TestRead(t *testing.T) {
	huge := `{"data":"` + strings.Repeat("x", 3*maxMessage) + `"}` + "\n"
	in := `"ready"` + "\n" + `{"app":1}` + "\n" + huge + `{"drover":"watchdog"}` + "\n" + `"ready"`
	var got []map[string]string
	err := Read(strings.NewReader(in), func(f map[string]string) { got = append(got, f) })
	want := []map[string]string{{"READY": "1"}, {"WATCHDOG": "1"}}
	if err != io.EOF || !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %v, %v; want %v, EOF (a last line without newline is no message yet)", got, err, want)
	}
}

func TestEnv(t *testing.T) {
	socks := []Socket{NewSocket(3, "web", "127.0.0.1:8080"), NewSocket(4, "v6", "[::1]:9090"),
		NewSocket(5, "unix", "unix:/run/x.sock"), NewSocket(6, "abstract", "unix:@x")}
	want := []Socket{{FD: 3, Name: "web", Host: "127.0.0.1", Port: 8080}, {FD: 4, Name: "v6", Host: "::1", Port: 9090},
		{FD: 5, Name: "unix", Path: "/run/x.sock"}, {FD: 6, Name: "abstract", Path: "\x00x"}}
	if !reflect.DeepEqual(socks, want) {
		t.Errorf("NewSocket: %+v, want %+v", socks, want)
	}
	env := Env([]string{"A=1", "NODE_OPTIONS= --enable-source-maps ", "B=2"}, "/run/d/drover.js", socks[:1], "SIGINT", 4)
	wantEnv := []string{"A=1", "B=2",
		"NODE_OPTIONS=--enable-source-maps --require=/run/d/drover.js",
		`DROVER_NODE_SOCKETS=[{"fd":3,"name":"web","host":"127.0.0.1","port":8080}]`,
		"DROVER_STOP_SIGNAL=SIGINT", "NODE_CHANNEL_FD=4", "NODE_CHANNEL_SERIALIZATION_MODE=json"}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("Env:\n%q\nwant\n%q", env, wantEnv)
	}
	if got := Env(nil, `/a b/"c\d.js`, nil, "SIGTERM", 3)[0]; got != `NODE_OPTIONS=--require="/a b/\"c\\d.js"` {
		t.Errorf("quoted: %s", got)
	}
}

// The shipped file is used when it is this drover's; otherwise a copy.
func TestInstall(t *testing.T) {
	dir, shipped := t.TempDir(), filepath.Join(t.TempDir(), "drover.js")
	if path, err := install(dir, shipped); err != nil || path != filepath.Join(dir, "drover.js") {
		t.Errorf("without a shipped file: %q, %v", path, err)
	}
	if err := os.WriteFile(shipped, []byte("// another version\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if path, err := install(t.TempDir(), shipped); err != nil || path == shipped {
		t.Errorf("with another version shipped: %q, %v", path, err)
	}
	if err := os.WriteFile(shipped, Script, 0o644); err != nil {
		t.Fatal(err)
	}
	if path, err := install("", shipped); err != nil || path != shipped {
		t.Errorf("with this version shipped: %q, %v", path, err)
	}
	if _, err := install("", filepath.Join(dir, "none.js")); err == nil {
		t.Error("no shipped file, no directory: no error")
	}
}

// node runs script under the preload as drover runs a worker: LISTEN_PID
// and WATCHDOG_PID its own pid (the shell execs node, keeping its pid),
// the channel at fd 3. It returns the command, started, and drover's end.
func node(t *testing.T, script string, env ...string) (*exec.Cmd, *os.File, *syncBuffer) {
	t.Helper()
	bin := testbin.Tool(t, "node")
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	preload, err := install(dir, filepath.Join(dir, "none"))
	if err != nil {
		t.Fatal(err)
	}
	worker, drover, err := NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@"`, bin, "-e", script)
	cmd.Env = Env(append(os.Environ(), env...), preload, nil, "SIGTERM", 3)
	cmd.ExtraFiles = []*os.File{worker}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	worker.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		drover.Close()
	})
	return cmd, drover, out
}

// waitExit waits for cmd to end by itself, within the hang guard.
func waitExit(t *testing.T, cmd *exec.Cmd, out *syncBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
	case <-time.After(waitLimit):
		t.Fatalf("node did not exit\n%s", out)
	}
}

// An app without 'message' listeners exits when it is done, as without
// drover: Node keeps the channel unref'd, and so is the heartbeat. Its
// process.send('ready') and the heartbeat arrive; its children get back
// the NODE_OPTIONS they would have had.
func TestNodeChannelDoesNotKeepAppAlive(t *testing.T) {
	cmd, drover, out := node(t, `process.send('ready');
		console.log('NODE_OPTIONS=' + process.env.NODE_OPTIONS + ' NODE_CHANNEL_FD=' + process.env.NODE_CHANNEL_FD);
		setTimeout(() => {}, 100);`, "WATCHDOG_USEC=30000", "NODE_OPTIONS=--no-deprecation")
	var got []map[string]string
	readDone := make(chan error, 1)
	go func() { readDone <- Read(drover, func(f map[string]string) { got = append(got, f) }) }()
	waitExit(t, cmd, out)
	if err := <-readDone; err != io.EOF {
		t.Errorf("Read: %v, want EOF once node exited", err)
	}
	// The 10 ms heartbeat fires before the 100 ms timer that ends it.
	if len(got) < 2 || got[0]["READY"] != "1" || got[1]["WATCHDOG"] != "1" {
		t.Errorf("messages %v, want READY=1 then heartbeats", got)
	}
	if s := out.String(); !strings.Contains(s, "NODE_OPTIONS=--no-deprecation NODE_CHANNEL_FD=undefined") {
		t.Errorf("node printed %q, want the user's NODE_OPTIONS alone", s)
	}
}

// drover's end gone (drover died, or closed it), the heartbeat's sends
// fail and must not take the app down.
func TestNodeChannelPeerGone(t *testing.T) {
	cmd, drover, out := node(t, `const http = require('http');
		http.createServer((req, res) => setTimeout(() => res.end('alive'), 50))
			.listen(0, '127.0.0.1', function () { console.log('port=' + this.address().port); });`,
		"WATCHDOG_USEC=30000")
	br := bufio.NewReader(drover)
	if line, err := br.ReadString('\n'); err != nil || Parse([]byte(line))["WATCHDOG"] != "1" {
		t.Fatalf("first message %q, %v\n%s", line, err, out)
	}
	drover.Close()
	// Node has seen the end when it closed its fd of the channel.
	fd3 := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd/3"
	deadline := time.Now().Add(waitLimit)
	for {
		if target, err := os.Readlink(fd3); err != nil || !strings.HasPrefix(target, "socket:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node never closed its end of the channel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var port string
	for port == "" && time.Now().Before(deadline) {
		if _, p, ok := strings.Cut(out.String(), "port="); ok {
			port = strings.TrimSpace(p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Each answer waits 50 ms: five heartbeats fail before it.
	for range 3 {
		resp, err := http.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatalf("after drover's end closed: %v\n%s", err, out)
		}
		resp.Body.Close()
	}
}

// syncBuffer is node's output, written by exec's copying goroutine while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
