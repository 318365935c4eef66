package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/nodejs"
	"github.com/droverd/drover/supervisor/sockets"
	"github.com/droverd/drover/testdata/testbin"
)

// A Node worker's fds are the sockets, then its IPC channel, a socket of
// its own that no other worker has; LISTEN_FDS counts only the sockets,
// and NODE_CHANNEL_FD names the channel. A NODE_CHANNEL_FD drover itself
// was given never reaches a worker.
func TestNodeWorkerFDs(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.Node = true
	cfg.Listen = []sockets.ListenSpec{
		{Name: "web", Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "admin", Network: "unix", Address: t.TempDir() + "/admin.sock"},
	}
	cfg.Environ = []string{"PATH=" + os.Getenv("PATH"), "NODE_OPTIONS=--max-old-space-size=100",
		"NODE_CHANNEL_FD=9", "NODE_CHANNEL_SERIALIZATION_MODE=advanced"}
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")

	listening := map[string]bool{}
	for _, s := range h.sup.sockets {
		listening[fmt.Sprintf("socket:[%d]", s.Inode)] = true
	}
	got := h.reportsNow(t)
	if len(got) != 2 {
		t.Fatalf("want reports from 2 workers, got %d", len(got))
	}
	channels := map[string]int{}
	for pid, r := range got {
		for k, want := range map[string]string{
			"LISTEN_FDS":                      "2",
			"NODE_CHANNEL_FD":                 "5",
			"NODE_CHANNEL_SERIALIZATION_MODE": "json",
			"DROVER_STOP_SIGNAL":              "SIGTERM",
		} {
			if r.Env[k] != want {
				t.Errorf("worker %d: %s=%q, want %q", pid, k, r.Env[k], want)
			}
		}
		if opts := r.Env["NODE_OPTIONS"]; !regexp.MustCompile(`^--max-old-space-size=100 --require=/\S+/drover\.js$`).MatchString(opts) {
			t.Errorf("worker %d: NODE_OPTIONS=%q, want the user's, then drover's preload", pid, opts)
		}
		var socks []nodejs.Socket
		if err := json.Unmarshal([]byte(r.Env["DROVER_NODE_SOCKETS"]), &socks); err != nil || len(socks) != 2 ||
			socks[0].FD != 3 || socks[0].Port == 0 || socks[1].FD != 4 || socks[1].Path != cfg.Listen[1].Address {
			t.Errorf("worker %d: DROVER_NODE_SOCKETS=%s (%v)", pid, r.Env["DROVER_NODE_SOCKETS"], err)
		}
		for fd := 3; fd <= 4; fd++ {
			if !listening[r.Fds[fd]] {
				t.Errorf("worker %d: fd %d is %s, want a listening socket", pid, fd, r.Fds[fd])
			}
		}
		channel := r.Fds[5]
		if !strings.HasPrefix(channel, "socket:[") || listening[channel] {
			t.Errorf("worker %d: fd 5 is %q, want its IPC channel", pid, channel)
		}
		channels[channel]++
		for fd, target := range r.Fds {
			switch {
			case fd <= 5:
			case target == "anon_inode:[eventpoll]", target == "anon_inode:[eventfd]", strings.HasPrefix(target, "/sys/fs/cgroup/"):
			default:
				t.Errorf("worker %d: fd %d (%s) leaked into the worker", pid, fd, target)
			}
		}
	}
	if len(channels) != 2 {
		t.Errorf("the workers' channels %v, want one of its own each", channels)
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Without --node, a NODE_CHANNEL_FD in drover's environment is removed
// too: it names an fd the trampoline closes.
func TestNodeChannelEnvStrippedWithoutNode(t *testing.T) {
	env := workerBaseEnv([]string{"NODE_CHANNEL_FD=9", "NODE_CHANNEL_SERIALIZATION_MODE=json", "DROVER_NODE_SOCKETS=[]", "NODE_OPTIONS=-r x", "KEEP=1"})
	if strings.Join(env, " ") != "NODE_OPTIONS=-r x KEEP=1" {
		t.Errorf("worker base env %q", env)
	}
}

// The real thing from here on: node, drover's preload, and the apps in
// testdata/node-apps, which have nothing for drover in them.

func nodeApp(t *testing.T, app string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "testdata", "node-apps", app))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeConfig runs app on n workers with --node, on one fresh TCP socket.
func nodeConfig(t *testing.T, app string, n int, env ...string) Config {
	t.Helper()
	return Config{
		Command:      []string{testbin.Tool(t, "node"), nodeApp(t, app)},
		Workers:      n,
		Node:         true,
		Listen:       []sockets.ListenSpec{{Name: "web", Network: "tcp", Address: "127.0.0.1:0"}},
		ReadyTimeout: 10 * time.Second,
		StopTimeout:  10 * time.Second,
		Trampoline:   droverBin,
		Environ:      append(os.Environ(), env...),
	}
}

// startNode starts cfg with PORT set to the port of drover's socket, as
// an operator sets it for an app that listens on process.env.PORT, and
// returns the socket's address.
func startNode(t *testing.T, cfg Config) (*harness, string) {
	t.Helper()
	var addr string
	h := startPrepared(t, cfg, "", nil, func(s *Supervisor) {
		addr = s.Addrs()[0]
		_, port, _ := net.SplitHostPort(addr)
		s.baseEnv = append(s.baseEnv, "PORT="+port)
	})
	return h, addr
}

var pidRE = regexp.MustCompile(`pid=(\d+)`)

// fetch GETs path on a new connection and returns the body and the pid
// that answered.
func fetch(t *testing.T, addr, path string) (string, int) {
	t.Helper()
	b := call(t, addr, path)
	m := pidRE.FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("GET %s%s: no pid in %q", addr, path, b)
	}
	pid, _ := strconv.Atoi(m[1])
	return b, pid
}

// status asks the running supervisor for its status, as drover status
// does.
func (h *harness) status(t *testing.T) control.Status {
	t.Helper()
	r := h.sup.handleRequest(control.Request{Command: "status"})
	if r.Status == nil {
		t.Fatalf("status: %s", r.Error)
	}
	return *r.Status
}

// countLogged is how many log entries have the message and fields.
func (h *harness) countLogged(msg string, fields logrus.Fields) int {
	n := 0
	for _, e := range h.logs.AllEntries() {
		match := e.Message == msg
		for k, v := range fields {
			match = match && fmt.Sprint(e.Data[k]) == fmt.Sprint(v)
		}
		if match {
			n++
		}
	}
	return n
}

func (h *harness) waitCountFields(t *testing.T, n int, msg string, fields logrus.Fields) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for h.countLogged(msg, fields) < n {
		if time.Now().After(deadline) {
			t.Fatalf("logged %q %v %d times, want %d", msg, fields, h.countLogged(msg, fields), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Express's app.listen(PORT) serves on drover's socket, from every worker.
func TestNodeExpressServesOnDroverSocket(t *testing.T) {
	modules := testbin.NodeModules(t, "express@4")
	h, addr := startNode(t, nodeConfig(t, "express-listen.js", 2, "NODE_PATH="+modules))
	h.sd.waitFor(t, "READY=1")
	workers := map[int]bool{}
	for _, p := range h.status(t).Processes {
		workers[p.Pid] = true
	}
	// A worker busy in /slow cannot accept, so a request meanwhile reaches
	// the other one; a few rounds find both without relying on how the
	// kernel spreads idle accepts.
	seen := map[int]bool{}
	for range 50 {
		slow := make(chan int, 1)
		go func() {
			client := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
			pid := 0
			if resp, err := client.Get("http://" + addr + "/slow"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if m := pidRE.FindSubmatch(b); m != nil {
					pid, _ = strconv.Atoi(string(m[1]))
				}
			}
			slow <- pid
		}()
		body, pid := fetch(t, addr, "/")
		if !strings.HasPrefix(body, "hello from express") {
			t.Fatalf("GET /: %q", body)
		}
		seen[pid] = true
		seen[<-slow] = true
		delete(seen, 0)
		if len(seen) == 2 {
			break
		}
	}
	if len(seen) != 2 {
		t.Errorf("answered by pids %v, want both workers %v", seen, workers)
	}
	for pid := range seen {
		if !workers[pid] {
			t.Errorf("pid %d answered, not a worker (%v)", pid, workers)
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Drained by the preload: they exit 0, not by the stop timeout.
	if n := h.countLogged("worker exited", logrus.Fields{"exit": "exit status 0"}); n != 2 {
		t.Errorf("%d workers exited 0 after the drain, want 2", n)
	}
}

// Reloads under load lose no request, whatever the app does on the stop
// signal: nothing (the preload drains it), PM2's graceful shutdown of its
// own (the preload keeps server.close() from dropping idle keep-alive
// connections, and the app exits itself), an exit at once (the preload
// holds the exit until the drain is done), or signal-exit's re-raise of
// the signal (the preload's listener is hidden from it, and the signal's
// return ends the drain in an exit).
func TestNodeReloadUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string // default: the app's
		app   string
		env   []string
		ready ReadyMode
		stop  syscall.Signal
	}{
		{app: "plain.js"},
		{app: "express-listen.js", env: []string{"NODE_PATH=" + testbin.NodeModules(t, "express@4")}},
		{app: "ready.js", env: []string{"READY_AFTER_MS=100"}, ready: ReadyNotify},
		{app: "pm2-graceful.js", ready: ReadyNotify, stop: syscall.SIGINT},
		{app: "exit-at-once.js"},
		{name: "signal-exit-3", app: "signal-exit.js", env: []string{"NODE_PATH=" + testbin.NodeModules(t, "signal-exit@3.0.7")}},
		{name: "signal-exit-4", app: "signal-exit.js", env: []string{"NODE_PATH=" + testbin.NodeModules(t, "signal-exit@4.1.0")}},
	} {
		name := tc.name
		if name == "" {
			name = strings.TrimSuffix(tc.app, ".js")
		}
		t.Run(name, func(t *testing.T) {
			cfg := nodeConfig(t, tc.app, 2, tc.env...)
			cfg.Ready.Mode, cfg.StopSignal = tc.ready, tc.stop
			h, addr := startNode(t, cfg)
			h.sd.waitFor(t, "READY=1")
			l := testbin.StartLoad(addr)
			for range 2 {
				if err := h.sup.Reload(); err != nil {
					t.Fatalf("reload: %v", err)
				}
			}
			// Keep the load on until the old workers have drained.
			for gen := 1; gen <= 2; gen++ {
				h.waitCountFields(t, 2, "worker exited", logrus.Fields{"generation": gen})
			}
			l.End(t)
			if n := h.countLogged("worker exited", logrus.Fields{"exit": "exit status 0"}); n != 4 {
				t.Errorf("%d drained workers exited 0, want 4", n)
			}
		})
	}
}

// process.send('ready') is what makes a worker ready under --ready
// notify; one that never sends it never is.
func TestNodeReadyGatesOnProcessSend(t *testing.T) {
	cfg := nodeConfig(t, "ready.js", 1, "READY_AFTER_MS=300")
	cfg.Ready.Mode = ReadyNotify
	h, addr := startNode(t, cfg)
	// It serves at once, before its setup is done and it says so.
	if body, _ := fetch(t, addr, "/"); !strings.Contains(body, "setup=false") {
		t.Errorf("before process.send('ready'): %q", body)
	}
	h.sd.waitFor(t, "READY=1")
	i := h.findEntry("worker ready", logrus.Fields{"how": "notify"}, true)
	if i < 0 {
		t.Fatal("not made ready by its message")
	}
	if took, _ := h.logs.AllEntries()[i].Data["took"].(time.Duration); took < 300*time.Millisecond {
		t.Errorf("ready %v after start, before the app sent ready", took)
	}
	if body, _ := fetch(t, addr, "/"); !strings.Contains(body, "setup=true") {
		t.Errorf("ready before its setup was done: %q", body)
	}

	cfg = nodeConfig(t, "ready.js", 1)
	cfg.Ready.Mode, cfg.ReadyTimeout = ReadyNotify, time.Second
	h, _ = startNode(t, cfg)
	if err := h.wait(t); !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "not ready within") {
		t.Errorf("Run of a worker that never sends ready: %v, want a failed start", err)
	}
}

// The heartbeat keeps a healthy worker alive past many watchdog
// intervals, and a blocked event loop (a handler that spins) is caught as
// a hang and replaced, with nothing in the app for it.
func TestNodeWatchdogCatchesBlockedEventLoop(t *testing.T) {
	const interval = time.Second
	cfg := nodeConfig(t, "plain.js", 1)
	cfg.WorkerWatchdog, cfg.HangGrace = interval, time.Second
	// SIGKILL at once: node would dump core on ABRT; the signal is not
	// what is tested here.
	cfg.HangSignal = syscall.SIGKILL
	h, addr := startNode(t, cfg)
	h.sd.waitFor(t, "READY=1")
	first := h.status(t).Processes[0]
	deadline := time.Now().Add(waitLimit)
	for {
		p := h.status(t).Processes[0]
		if p.Pid != first.Pid || p.State != "ready" {
			t.Fatalf("healthy worker %d replaced or not ready: %+v", first.Pid, p)
		}
		// Pinged lately, three intervals after it was ready.
		if !p.LastPing.IsZero() && time.Since(p.Started) > 3*interval && time.Since(p.LastPing) < interval {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat: %+v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	go func() {
		// It never answers: the worker dies with it.
		client := &http.Client{Timeout: waitLimit}
		if resp, err := client.Get("http://" + addr + "/spin"); err == nil {
			resp.Body.Close()
		}
	}()
	h.waitLogged(t, "worker hung: killing it", logrus.Fields{"pid": first.Pid})
	if i := h.findEntry("worker hung: killing it", nil, true); !strings.Contains(fmt.Sprint(h.logs.AllEntries()[i].Data["reason"]), "no WATCHDOG=1 within 1s") {
		t.Errorf("hung for %v", h.logs.AllEntries()[i].Data["reason"])
	}
	h.waitCountFields(t, 2, "worker ready", nil)
	if _, pid := fetch(t, addr, "/"); pid == first.Pid {
		t.Errorf("the hung worker %d still answers", pid)
	}
}

// A listen on a port drover did not pass, or on port 0, listens as it
// would without drover; the one on drover's port gets drover's socket,
// with the address and callbacks Node gives any server.
func TestNodeOwnPortsListenAsWithoutDrover(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminPort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	report := filepath.Join(t.TempDir(), "addresses.json")
	cfg := nodeConfig(t, "own-ports.js", 1, "ADMIN_PORT="+strconv.Itoa(adminPort), "REPORT="+report)
	h, addr := startNode(t, cfg)
	h.sd.waitFor(t, "READY=1")
	var got map[string]struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	}
	deadline := time.Now().Add(waitLimit)
	for {
		b, err := os.ReadFile(report)
		if err == nil && json.Unmarshal(b, &got) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report from the app: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, port, _ := net.SplitHostPort(addr)
	if strconv.Itoa(got["main"].Port) != port || got["admin"].Port != adminPort || got["any"].Port == 0 || strconv.Itoa(got["any"].Port) == port {
		t.Errorf("server addresses %+v; drover's port %s, admin port %d", got, port, adminPort)
	}
	for name, a := range map[string]string{"main": addr, "admin": net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort)),
		"any": net.JoinHostPort("127.0.0.1", strconv.Itoa(got["any"].Port))} {
		if body, _ := fetch(t, a, "/"); !strings.HasPrefix(body, name+" ") {
			t.Errorf("GET %s: %q, want the %s server", a, body, name)
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !h.logged("worker exited", logrus.Fields{"exit": "exit status 0"}) {
		t.Error("not drained: all three servers should close and the worker exit 0")
	}
}
