package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/testbin"
)

// These tests run the real drover binary as a user would, including under
// systemd-socket-activate, the socket-activation tool systemd ships.

var bin struct{ drover, example, testworker string }

func TestMain(m *testing.M) {
	testbin.Main(m, map[*string]string{
		&bin.drover: testbin.Drover, &bin.example: testbin.ExampleWorker, &bin.testworker: testbin.Testworker,
	})
}

const waitLimit = 30 * time.Second

// freePort returns a loopback port that was free a moment ago, for tools
// that take a port rather than a socket.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// started is a process the test started; it is killed in Cleanup if the
// test did not end it.
type started struct {
	cmd    *exec.Cmd
	stderr *lineLog
	exited chan error
}

func startProcess(t *testing.T, name string, args ...string) *started {
	t.Helper()
	return startProcessEnv(t, nil, name, args...)
}

// startProcessEnv starts name with env added to the test's environment.
func startProcessEnv(t *testing.T, env []string, name string, args ...string) *started {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &started{cmd: cmd, stderr: newLineLog(pipe), exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.stderr.wait(); p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// wait returns the exit code.
func (p *started) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(waitLimit):
		t.Fatal("process did not exit")
	}
	return -1
}

// lineLog collects a process's stderr and lets a test wait for a line.
type lineLog struct {
	lines chan string
	all   strings.Builder
	done  chan struct{}
	seen  []string
}

func newLineLog(r io.Reader) *lineLog {
	l := &lineLog{lines: make(chan string, 10000), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
	}()
	return l
}

func (l *lineLog) wait() { <-l.done }

// waitFor returns the first line (seen or coming) that contains substr.
func (l *lineLog) waitFor(t *testing.T, substr string) string {
	t.Helper()
	for _, s := range l.seen {
		if strings.Contains(s, substr) {
			return s
		}
	}
	deadline := time.After(waitLimit)
	for {
		select {
		case s, ok := <-l.lines:
			if !ok {
				t.Fatalf("stderr ended without %q", substr)
			}
			l.seen = append(l.seen, s)
			l.all.WriteString(s + "\n")
			if strings.Contains(s, substr) {
				return s
			}
		case <-deadline:
			t.Fatalf("no %q on stderr", substr)
		}
	}
}

// waitForAll waits until n lines (seen or coming) contain every substring.
func (l *lineLog) waitForAll(t *testing.T, n int, substrs ...string) {
	t.Helper()
	matches := func(s string) bool {
		for _, sub := range substrs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	}
	count := 0
	for _, s := range l.seen {
		if matches(s) {
			count++
		}
	}
	deadline := time.After(waitLimit)
	for count < n {
		select {
		case s, ok := <-l.lines:
			if !ok {
				t.Fatalf("stderr ended with %d of %d lines with %q", count, n, substrs)
			}
			l.seen = append(l.seen, s)
			l.all.WriteString(s + "\n")
			if matches(s) {
				count++
			}
		case <-deadline:
			t.Fatalf("%d of %d lines with %q on stderr", count, n, substrs)
		}
	}
}

func (l *lineLog) String() string {
	for {
		select {
		case s, ok := <-l.lines:
			if !ok {
				return l.all.String()
			}
			l.seen = append(l.seen, s)
			l.all.WriteString(s + "\n")
		default:
			return l.all.String()
		}
	}
}

var answer = regexp.MustCompile(`pid=(\d+) worker=(\d+) generation=(\d+)`)

// ask makes one request on a new connection; it returns pid and slot.
func ask(t *testing.T, addr string) (pid, slot string) {
	t.Helper()
	client := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := answer.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("GET %s: unexpected answer %q", addr, b)
	}
	return m[1], m[2]
}

func alive(pid string) bool {
	var n int
	fmt.Sscan(pid, &n)
	return syscall.Kill(n, 0) == nil
}

// The definition of done: under systemd-socket-activate, two
// workers answer from distinct pids; kill -9 of one is healed in its slot;
// SIGTERM drains and drover exits 0 with no worker left.
func TestSocketActivatedWorkers(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate not installed (Debian package systemd; make deps installs it)")
	}
	addr := freePort(t)
	p := startProcess(t, activate, "-l", addr, bin.drover, "run", "--workers", "2", "--", bin.example)
	p.stderr.waitFor(t, "Listening on "+addr)

	// The first connection makes systemd-socket-activate exec drover; it
	// waits in the backlog until a worker accepts it.
	slots := map[string]string{} // slot -> pid
	for i := 0; len(slots) < 2 && i < 2000; i++ {
		pid, slot := ask(t, addr)
		slots[slot] = pid
	}
	if len(slots) != 2 || slots["0"] == slots["1"] {
		t.Fatalf("want 2 workers with distinct pids answering, got %v", slots)
	}

	p.stderr.waitFor(t, "all 2 workers ready")
	victim := slots["0"]
	var pidNum int
	fmt.Sscan(victim, &pidNum)
	if err := syscall.Kill(pidNum, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.stderr.waitFor(t, "restarting worker")
	healed := ""
	for i := 0; healed == "" && i < 2000; i++ {
		if pid, slot := ask(t, addr); slot == "0" && pid != victim {
			healed = pid
		}
	}
	if healed == "" {
		t.Fatalf("slot 0 never answered from a new pid after kill -9 of %s", victim)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("drover exited %d after SIGTERM, want 0", code)
	}
	for _, pid := range []string{slots["1"], healed} {
		if alive(pid) {
			t.Errorf("worker %s still alive after drover exited", pid)
		}
	}
}

// A second SIGTERM during the drain does not cut the drain short or lose
// the SIGKILL that ends a worker ignoring the stop signal.
func TestSecondSIGTERMKeepsDraining(t *testing.T) {
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "1", "--stop-timeout", "1s", "--", bin.testworker, "-mode", "ignore-term")
	pidLine := p.stderr.waitFor(t, "worker ready")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.stderr.waitFor(t, "draining workers")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.stderr.waitFor(t, "while already stopping: the drain continues")
	p.stderr.waitFor(t, "sending SIGKILL")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(pidLine); m == nil || alive(m[1]) {
		t.Errorf("worker from %q still alive", pidLine)
	}
}

// Bad input: one clear line, exit code 2 (syntax) or 78 (a configuration
// drover cannot run with), never a panic.
func TestBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	sh := func(env string) []string {
		// exec keeps the shell's pid, so LISTEN_PID=$$ is drover's pid.
		return []string{"sh", "-c", env + ` exec "$0" run -- true`, bin.drover}
	}
	run := func(flags ...string) []string {
		return append(append([]string{bin.drover, "run", "--listen", "127.0.0.1:0"}, flags...), "--", "true")
	}
	for _, tc := range []struct {
		name string
		argv []string
		want string
		code int // 0 means exitUsage
	}{
		{"no command", []string{bin.drover}, "", 0},
		{"unknown command", []string{bin.drover, "jump"}, `unknown command "jump"`, 0},
		{"unknown flag", []string{bin.drover, "run", "--bogus", "--", "true"}, "drover run: unknown flag: --bogus", 0},
		{"unknown flag after UNIT", []string{bin.drover, "status", "myapp", "--bogus"}, "drover status: unknown flag: --bogus", 0},
		{"unknown root flag", []string{bin.drover, "--bogus"}, "drover: unknown flag: --bogus", 0},
		{"unknown command with flags", []string{bin.drover, "jump", "--json"}, `drover: unknown command "jump"`, 0},
		{"bad duration", run("--ready-timeout", "soon"), `invalid argument "soon" for "--ready-timeout"`, 0},
		{"bad count", []string{bin.drover, "run", "--max-failures", "many", "--", "true"}, `invalid argument "many" for "--max-failures"`, 0},
		{"flag without its value", []string{bin.drover, "status", "--control"}, "flag needs an argument: --control", 0},
		{"two units", []string{bin.drover, "status", "a", "--json", "b"}, "one UNIT at most", 0},
		{"no unit for logs", []string{bin.drover, "logs", "-f"}, "want one UNIT", 0},
		{"scale without a count", []string{bin.drover, "scale", "myapp"}, "want UNIT and a count", 0},
		{"scale by a flag", []string{bin.drover, "scale", "myapp", "-x"}, "unknown shorthand flag: 'x'", 0},
		{"reload argument", []string{bin.drover, "reload", "myapp"}, `unexpected argument "myapp"`, 0},
		{"init without NAME", []string{bin.drover, "init", "--listen", "8080", "--", "true"}, "want NAME first", 0},
		{"init without command", []string{bin.drover, "init", "web", "--listen", "8080"}, "no command", 0},
		{"help for nothing", []string{bin.drover, "help", "jump"}, `drover help: no help for "jump"`, 0},
		{"no shell", []string{bin.drover, "completion"}, "want one shell", 0},
		{"unknown shell", []string{bin.drover, "completion", "tcsh"}, `no completion for "tcsh"`, 0},
		{"man with an argument", []string{bin.drover, "man", "run"}, "drover man: takes no arguments", 0},
		{"zero workers", []string{bin.drover, "run", "--workers", "0", "--listen", "127.0.0.1:0", "--", "true"}, `--workers "0"`, 0},
		{"absurd workers", []string{bin.drover, "run", "--workers", "5000", "--listen", "127.0.0.1:0", "--", "true"}, "from 1 to 1024", 0},
		{"bad ready", []string{bin.drover, "run", "--ready", "soon", "--listen", "127.0.0.1:0", "--", "true"}, `--ready "soon"`, 0},
		{"bad signal", []string{bin.drover, "run", "--stop-signal", "FOO", "--listen", "127.0.0.1:0", "--", "true"}, `signal "FOO"`, 0},
		{"bad size", []string{bin.drover, "run", "--max-memory", "lots", "--listen", "127.0.0.1:0", "--", "true"}, `--max-memory "lots": want a size such as 512M or 1.5G`, 0},
		{"zero size", []string{bin.drover, "run", "--max-memory", "0", "--listen", "127.0.0.1:0", "--", "true"}, `--max-memory "0"`, 0},
		{"zero memory interval", []string{bin.drover, "run", "--memory-interval", "0", "--listen", "127.0.0.1:0", "--", "true"}, "--memory-interval 0s: want a positive duration", 0},
		{"negative lifetime", []string{bin.drover, "run", "--max-lifetime", "-1h", "--listen", "127.0.0.1:0", "--", "true"}, "--max-lifetime -1h0m0s: want a positive duration", 0},
		{"bad hang signal", []string{bin.drover, "run", "--hang-signal", "NOPE", "--listen", "127.0.0.1:0", "--", "true"}, `--hang-signal: signal "NOPE"`, 0},
		{"missing command", []string{bin.drover, "run", "--listen", "127.0.0.1:0"}, "no worker command", 0},
		{"zero max-failures", run("--max-failures", "0"), "--max-failures 0: want at least 1", 0},
		{"negative max-failures", run("--max-failures", "-1"), "--max-failures -1: want at least 1", 0},
		{"zero backoff-min", run("--backoff-min", "0"), "--backoff-min 0s: want a positive duration", 0},
		{"zero backoff-max", run("--backoff-max", "0"), "--backoff-max 0s: want a positive duration", 0},
		{"zero min-uptime", run("--min-uptime", "0"), "--min-uptime 0s: want a positive duration", 0},
		{"zero ready-timeout", run("--ready-timeout", "0"), "--ready-timeout 0s: want a positive duration", 0},
		{"negative stop-timeout", run("--stop-timeout", "-1s"), "--stop-timeout -1s: want a positive duration", 0},
		{"zero failure-window", run("--failure-window", "0"), "--failure-window 0s: want a positive duration", 0},
		{"huge stop-timeout", run("--stop-timeout", "2562047h"), "--stop-timeout 2562047h0m0s: want at most 24h0m0s", 0},
		{"huge ready-timeout", run("--ready-timeout", "25h"), "--ready-timeout 25h0m0s: want at most 24h0m0s", 0},
		{"huge backoff-min", run("--backoff-min", "25h"), "--backoff-min 25h0m0s: want at most 24h0m0s", 0},
		{"huge backoff-max", run("--backoff-max", "2562047h"), "--backoff-max 2562047h0m0s: want at most 24h0m0s", 0},
		{"command not found", []string{bin.drover, "run", "--listen", "127.0.0.1:0", "--", "/nonexistent/app"}, `worker command "/nonexistent/app"`, exitConfig},
		{"no sockets", []string{bin.drover, "run", "--", "true"}, "no sockets", exitConfig},
		{"bad address", []string{bin.drover, "run", "--listen", "127.0.0.1", "--", "true"}, "want HOST:PORT", 0},
		{"busy address", []string{bin.drover, "run", "--listen", busy.Addr().String(), "--", "true"}, "address already in use", exitConfig},
		{"malformed LISTEN_FDS", sh("LISTEN_PID=$$ LISTEN_FDS=abc"), `LISTEN_FDS="abc"`, exitConfig},
		{"names do not match", sh("LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=a:b"), "has 2 names for LISTEN_FDS=1", exitConfig},
		{"LISTEN_PID not a number", sh("LISTEN_PID=abc LISTEN_FDS=1"), `LISTEN_PID="abc" is not a pid`, exitConfig},
		{"fd 3 is not a socket", sh("exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1"), "fd 3 (unknown) is not a socket", exitConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			want := tc.code
			if want == 0 {
				want = exitUsage
			}
			if !errors.As(err, &exit) || exit.ExitCode() != want {
				t.Fatalf("exit %v, want code %d; stderr %q", err, want, stderr.String())
			}
			out := stderr.String()
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
				t.Fatalf("panicked: %s", out)
			}
			if tc.want == "" {
				return // usage text
			}
			if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("stderr %q, want one line containing %q", out, tc.want)
			}
		})
	}
}

// LISTEN_FDS left in a shell without LISTEN_PID (or with an empty one) was
// meant for some other process: drover ignores it, as sd_listen_fds(3)
// does, and serves on --listen.
func TestStaleListenFDsInDevMode(t *testing.T) {
	for _, env := range [][]string{{"LISTEN_FDS=2"}, {"LISTEN_FDS=2", "LISTEN_PID=", "LISTEN_FDNAMES=a:b"}} {
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			p := startProcessEnv(t, env, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "1", "--", bin.example)
			addr := regexp.MustCompile(`sockets="?([0-9.:]+)`).FindStringSubmatch(p.stderr.waitFor(t, "starting workers"))[1]
			p.stderr.waitFor(t, "all 1 workers ready")
			if _, slot := ask(t, addr); slot != "0" {
				t.Errorf("answered by slot %s, want 0", slot)
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0", code)
			}
		})
	}
}

// Without journald, worker output reaches drover's stderr (and stdout)
// prefixed with its slot and pid, and a crashed worker's last line comes
// before drover logs the crash.
func TestWorkerOutputInDevMode(t *testing.T) {
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "1", "--", bin.testworker, "-mode", "crash")
	line := p.stderr.waitFor(t, "testworker: crashing with exit code 3")
	if !regexp.MustCompile(`^\[w0 \d+\] testworker: crashing`).MatchString(line) {
		t.Errorf("worker line %q lacks the [wSLOT PID] prefix", line)
	}
	p.stderr.waitFor(t, "worker failed")
	if code := p.wait(t); code != 1 {
		t.Errorf("exit %d, want 1 (start failed)", code)
	}
}

// drover(1) is made from the same text as drover help; groff must render
// it without a warning (lintian checks the installed page the same way).
func TestManPage(t *testing.T) {
	page, err := exec.Command(bin.drover, "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH DROVER 1", ".SS \"drover run", "\\-\\-ready\\-timeout", ".SH EXIT STATUS"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed: rendering not checked")
	}
	render := exec.Command(groff, "-man", "-ww", "-z")
	render.Stdin = strings.NewReader(string(page))
	out, err := render.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"help"}, {"help", "run"}, {"help", "reload"}, {"run", "--help"}, {"version"}, {"--version"}, {"-h"}, {"status", "-h"}, {"status", "myapp", "--help"}, {"-help"}} {
		if out, err := exec.Command(bin.drover, args...).CombinedOutput(); err != nil {
			t.Errorf("drover %v: %v\n%s", args, err, out)
		}
	}
}

// Workers die with drover even without systemd (Pdeathsig from the thread
// that started them, which lives as long as drover), so kill -9 of drover
// orphans nothing.
func TestWorkersDieWithDrover(t *testing.T) {
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "2", "--", bin.testworker, "-mode", "ignore-term")
	var pids []string
	for range 2 {
		line := p.stderr.waitFor(t, "worker ready")
		pids = append(pids, regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(line)[1])
		p.stderr.seen = p.stderr.seen[:0] // the next waitFor looks at new lines only
	}
	if pids[0] == pids[1] {
		t.Fatalf("the same worker reported ready twice: %v", pids)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)
	deadline := time.Now().Add(waitLimit)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("worker %s outlived drover's kill -9", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
