package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/droverd/drover/testdata/testbin"
)

// Real workers, each given its sockets at fds 3.. the way drover gives them:
// one per way of waiting for connections, and two that are not ready.
func TestListeningOnRealWorkers(t *testing.T) {
	testworker := testworkerBin
	python := `import socket, socketserver, select, selectors, asyncio` + "\n"
	cases := []struct {
		name string
		argv []string
	}{
		{"go netpoller", testworkerArgv(testworker, "-mode", "report")},
		{"go blocking accept", testworkerArgv(testworker, "-mode", "blocking-accept")},
		{"node", []string{"node", "-e", `require('net').createServer(c => c.end()).listen({fd: 3})`}},
		{"python asyncio", []string{"python3", "-c", python + `
async def main():
    srv = await asyncio.start_server(lambda r, w: w.close(), sock=socket.socket(fileno=3))
    await srv.serve_forever()
asyncio.run(main())`}},
		{"python selectors", []string{"python3", "-c", python + `
s = socket.socket(fileno=3)
s.setblocking(False)
sel = selectors.EpollSelector()
sel.register(s, selectors.EVENT_READ)
while True:
    for _ in sel.select():
        try: s.accept()[0].close()
        except BlockingIOError: pass`}},
		{"python blocking accept", []string{"python3", "-c", python + `
s = socket.socket(fileno=3)
while True: s.accept()[0].close()`}},
		// socketserver (and so http.server) waits in poll(2).
		{"python socketserver", []string{"python3", "-c", python + `
class Server(socketserver.TCPServer):
    def __init__(self):
        socketserver.BaseServer.__init__(self, None, socketserver.BaseRequestHandler)
        self.socket = socket.socket(fileno=3)
Server().serve_forever()`}},
		{"python select", []string{"python3", "-c", python + `
s = socket.socket(fileno=3)
while True:
    select.select([s], [], [])
    s.accept()[0].close()`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sock, ino := listenSocket(t)
			w := startWithSockets(t, c.argv, sock)
			waitMissing(t, w, []uint64{ino}, nil)
		})
	}
	t.Run("never ready", func(t *testing.T) {
		t.Parallel()
		sock, ino := listenSocket(t)
		reports := t.TempDir()
		w := startWithSockets(t, testworkerArgv(testworker, "-mode", "never-ready", "-report-dir", reports), sock)
		// The report is written once the worker runs its own code: from
		// then on it only holds the socket.
		report := filepath.Join(reports, strconv.Itoa(w.Process.Pid)+".json")
		deadline := time.Now().Add(10 * time.Second)
		for tick := time.Tick(5 * time.Millisecond); ; <-tick {
			if _, err := os.Stat(report); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testworker wrote no %s", report)
			}
		}
		stayMissing(t, w, []uint64{ino}, []uint64{ino})
	})
	t.Run("one of two", func(t *testing.T) {
		t.Parallel()
		served, servedIno := listenSocket(t)
		held, heldIno := listenSocket(t)
		// LISTEN_FDS=1: the worker serves fd 3 and merely holds fd 4.
		w := startWithSockets(t, testworkerArgv(testworker, "-mode", "report"), served, held)
		inodes := []uint64{heldIno, servedIno}
		waitMissing(t, w, inodes, []uint64{heldIno})
		stayMissing(t, w, inodes, []uint64{heldIno})
	})
}

func TestListeningOnExited(t *testing.T) {
	_, ino := listenSocket(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := ListeningOn(cmd.Process.Pid, []uint64{ino})
	if !errors.Is(err, ErrProcessGone) {
		t.Fatalf("reaped process: got %v, want ErrProcessGone", err)
	}
}

func TestListeningOnZombie(t *testing.T) {
	_, ino := listenSocket(t)
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	// Wait for the exit without reaping: the pid stays, as a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ListeningOn(cmd.Process.Pid, []uint64{ino})
	if !errors.Is(err, ErrProcessGone) {
		t.Fatalf("zombie: got %v, want ErrProcessGone", err)
	}
}

func TestSocketInode(t *testing.T) {
	sock, ino := listenSocket(t)
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", sock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("socket:[%d]", ino); link != want {
		t.Errorf("SocketInode = %d, but the fd links to %s", ino, link)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := SocketInode(f); err == nil {
		t.Errorf("SocketInode of a regular file: no error")
	}
}

// BenchmarkListeningOn measures one poll of a ready worker, per way of
// waiting: epoll (Go), a blocked accept (found after the epoll pass), and
// node (more fds and threads).
func BenchmarkListeningOn(b *testing.B) {
	testworker := testworkerBin
	for _, c := range []struct {
		name string
		argv []string
	}{
		{"epoll-go", testworkerArgv(testworker, "-mode", "report")},
		{"accept-go", testworkerArgv(testworker, "-mode", "blocking-accept")},
		{"epoll-node", []string{"node", "-e", `require('net').createServer(c => c.end()).listen({fd: 3})`}},
	} {
		b.Run(c.name, func(b *testing.B) {
			sock, ino := listenSocket(b)
			w := startWithSockets(b, c.argv, sock)
			inodes := []uint64{ino}
			waitMissing(b, w, inodes, nil)
			b.ReportAllocs()
			for b.Loop() {
				if missing, err := ListeningOn(w.Process.Pid, inodes); err != nil || len(missing) > 0 {
					b.Fatalf("missing %v, err %v", missing, err)
				}
			}
		})
	}
}

// waitMissing polls until ListeningOn reports exactly want missing.
func waitMissing(t testing.TB, w *exec.Cmd, inodes, want []uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var missing []uint64
	var err error
	for tick := time.Tick(5 * time.Millisecond); time.Now().Before(deadline); <-tick {
		missing, err = ListeningOn(w.Process.Pid, inodes)
		if err == nil && slices.Equal(missing, want) {
			return
		}
	}
	t.Fatalf("pid %d after 10s: missing %v, err %v; want missing %v", w.Process.Pid, missing, err, want)
}

// stayMissing checks, over 40 polls 5ms apart, that ListeningOn keeps
// reporting want missing.
func stayMissing(t testing.TB, w *exec.Cmd, inodes, want []uint64) {
	t.Helper()
	tick := time.Tick(5 * time.Millisecond)
	for i := range 40 {
		missing, err := ListeningOn(w.Process.Pid, inodes)
		if err != nil || !slices.Equal(missing, want) {
			t.Fatalf("poll %d: missing %v, err %v; want missing %v", i, missing, err, want)
		}
		<-tick
	}
}

// listenSocket opens a listening TCP socket on 127.0.0.1:0, blocking as
// systemd passes them (a blocking accept(2) in a worker needs that).
func listenSocket(t testing.TB) (*os.File, uint64) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listen-test")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	ino, err := SocketInode(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, ino
}

// testworkerBin is testdata/testworker, built once by TestMain.
var testworkerBin string

func TestMain(m *testing.M) {
	testbin.Main(m, map[*string]string{&testworkerBin: testbin.Testworker})
}

// testworkerArgv runs testworker through sh, which sets LISTEN_PID to its
// own pid and execs, keeping the pid: testworker checks LISTEN_PID.
func testworkerArgv(testworker string, args ...string) []string {
	return append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, testworker}, args...)
}

// startWithSockets starts argv with socks at fds 3.. and LISTEN_FDS=1; the
// worker is killed and waited when the test ends, its output logged if the
// test failed.
func startWithSockets(t testing.TB, argv []string, socks ...*os.File) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Skipf("%s not installed", argv[0])
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = socks
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", argv[0], cmd.Process.Pid, out.Bytes())
		}
	})
	return cmd
}

// fakeProc is a /proc tree for one process, for the cases real programs do
// not produce on demand.
type fakeProc struct {
	t    *testing.T
	root string // stands for /proc
	dir  string // root/<pid>
	pid  int
}

func newFakeProc(t *testing.T, state byte) *fakeProc {
	p := &fakeProc{t: t, root: t.TempDir(), pid: 4242}
	p.dir = filepath.Join(p.root, strconv.Itoa(p.pid))
	for _, d := range []string{"fd", "fdinfo", "task"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.write("stat", fmt.Sprintf("%d (a) b) %c 1 1 1 0 -1\n", p.pid, state))
	return p
}

func (p *fakeProc) write(name, content string) {
	if err := os.WriteFile(filepath.Join(p.dir, name), []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) fd(n int, target string) {
	if err := os.Symlink(target, filepath.Join(p.dir, "fd", strconv.Itoa(n))); err != nil {
		p.t.Fatal(err)
	}
}

// epoll adds an eventpoll fd n whose interest set is entries.
func (p *fakeProc) epoll(n int, entries ...string) {
	p.fd(n, "anon_inode:[eventpoll]")
	info := "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\n"
	for _, e := range entries {
		info += e + "\n"
	}
	p.write(filepath.Join("fdinfo", strconv.Itoa(n)), info)
}

func (p *fakeProc) thread(tid int, syscallLine string) {
	dir := filepath.Join(p.dir, "task", strconv.Itoa(tid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	p.write(filepath.Join("task", strconv.Itoa(tid), "syscall"), syscallLine+"\n")
}

// mem writes b at address addr of the process's memory.
func (p *fakeProc) mem(addr int64, b []byte) {
	f, err := os.OpenFile(filepath.Join(p.dir, "mem"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, addr); err != nil {
		p.t.Fatal(err)
	}
}

// pollfd encodes a struct pollfd.
func pollfd(fd int32, events uint16) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b, uint32(fd))
	binary.NativeEndian.PutUint16(b[4:], events)
	return b
}

// fdSet encodes the first word of an fd_set.
func fdSet(fds ...int) []byte {
	var w uint64
	for _, fd := range fds {
		w |= 1 << fd
	}
	return binary.NativeEndian.AppendUint64(nil, w)
}

func TestListeningInFakeProc(t *testing.T) {
	dev, err := sockfsDev()
	if err != nil {
		t.Fatal(err)
	}
	const ino, other = 0x44b6, 0x44b7
	entry := func(events, ino, sdev uint64) string {
		return fmt.Sprintf("tfd:        6 events: %8x data: 3f87ae236f000001  pos:0 ino:%x sdev:%x", events, ino, sdev)
	}
	sock := fmt.Sprintf("socket:[%d]", ino)
	const sp = "0x7ffe73394148 0x7f404971a230"
	cases := []struct {
		name   string
		goarch string
		setup  func(p *fakeProc)
		want   []uint64 // missing, of {ino, other}
	}{
		{"epoll go", "amd64", func(p *fakeProc) { p.epoll(7, entry(0x8000201d, ino, dev)) }, []uint64{other}},
		{"epoll node", "amd64", func(p *fakeProc) { p.epoll(7, entry(0x19, ino, dev), entry(0x19, other, dev)) }, nil},
		{"epoll out only", "amd64", func(p *fakeProc) { p.epoll(7, entry(0x4, ino, dev)) }, []uint64{ino, other}},
		{"epoll oneshot fired", "amd64", func(p *fakeProc) { p.epoll(7, entry(0x40000000, ino, dev)) }, []uint64{ino, other}},
		{"epoll same inode on a tty", "amd64", func(p *fakeProc) { p.epoll(7, entry(0x19, ino, dev+1)) }, []uint64{ino, other}},
		{"epoll garbage", "amd64", func(p *fakeProc) { p.epoll(7, "tfd: 6 events: zz ino:44b6 sdev:9", "tfd:") }, []uint64{ino, other}},
		{"accept4 amd64", "amd64", func(p *fakeProc) { p.fd(3, sock); p.thread(11, "288 0x3 0x0 0x0 0x80000 0x0 0x0 "+sp) }, []uint64{other}},
		{"accept4 arm64", "arm64", func(p *fakeProc) { p.fd(3, sock); p.thread(11, "242 0x3 0x0 0x0 0x80000 0x0 0x0 "+sp) }, []uint64{other}},
		{"accept unknown arch", "riscv64", func(p *fakeProc) { p.fd(3, sock); p.thread(11, "202 0x3 0x0 0x0 0x0 0x0 0x0 "+sp) }, []uint64{ino, other}},
		{"accept other fd", "amd64", func(p *fakeProc) { p.fd(3, sock); p.fd(5, "pipe:[9]"); p.thread(11, "43 0x5 0x0 0x0 0x0 0x0 0x0 "+sp) }, []uint64{ino, other}},
		{"thread running", "amd64", func(p *fakeProc) { p.fd(3, sock); p.thread(11, "running"); p.thread(12, "-1 "+sp) }, []uint64{ino, other}},
		{"poll", "amd64", func(p *fakeProc) {
			p.fd(3, sock)
			p.mem(0x1000, append(pollfd(9, 1), pollfd(3, 1)...))
			p.thread(11, "7 0x1000 0x2 0x1f4 0x0 0x0 0x0 "+sp)
		}, []uint64{other}},
		{"poll for output", "amd64", func(p *fakeProc) {
			p.fd(3, sock)
			p.mem(0x1000, pollfd(3, 4))
			p.thread(11, "7 0x1000 0x1 0x1f4 0x0 0x0 0x0 "+sp)
		}, []uint64{ino, other}},
		{"poll bad address", "amd64", func(p *fakeProc) { p.fd(3, sock); p.thread(11, "271 0xffff0000 0x1 0x0 0x0 0x8 0x0 "+sp) }, []uint64{ino, other}},
		{"select", "amd64", func(p *fakeProc) {
			p.fd(3, sock)
			p.mem(0x2000, fdSet(1, 3))
			p.thread(11, "23 0x4 0x2000 0x0 0x0 0x0 0x0 "+sp)
		}, []uint64{other}},
		{"select below the fd", "amd64", func(p *fakeProc) {
			p.fd(3, sock)
			p.mem(0x2000, fdSet(3))
			p.thread(11, "23 0x3 0x2000 0x0 0x0 0x0 0x0 "+sp)
		}, []uint64{ino, other}},
		{"epoll and accept", "amd64", func(p *fakeProc) {
			p.epoll(4, entry(0x19, other, dev))
			p.fd(3, sock)
			p.thread(11, "288 0x3 0x0 0x0 0x80000 0x0 0x0 "+sp)
		}, nil},
		{"thread gone", "amd64", func(p *fakeProc) {
			p.fd(3, sock)
			if err := os.Mkdir(filepath.Join(p.dir, "task", "11"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, []uint64{ino, other}},
		{"no fds yet", "amd64", func(p *fakeProc) {}, []uint64{ino, other}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newFakeProc(t, 'S')
			c.setup(p)
			missing, err := listeningIn(p.root, c.goarch, p.pid, []uint64{ino, other})
			if err != nil || !slices.Equal(missing, c.want) {
				t.Errorf("missing %x, err %v; want missing %x", missing, err, c.want)
			}
		})
	}
}

func TestListeningInFakeProcGone(t *testing.T) {
	zombie := newFakeProc(t, 'Z')
	if _, err := listeningIn(zombie.root, "amd64", zombie.pid, []uint64{1}); !errors.Is(err, ErrProcessGone) {
		t.Errorf("zombie: got %v, want ErrProcessGone", err)
	}
	if _, err := listeningIn(t.TempDir(), "amd64", 4242, []uint64{1}); !errors.Is(err, ErrProcessGone) {
		t.Errorf("no such pid: got %v, want ErrProcessGone", err)
	}
}

// TestListeningInClosesFds runs every kind of read (fd links, fdinfo,
// syscall, mem) many times and checks that no fd is left open.
func TestListeningInClosesFds(t *testing.T) {
	p := newFakeProc(t, 'S')
	p.epoll(4, "tfd: 6 events: 19 data: 0 pos:0 ino:1 sdev:0")
	p.fd(3, "socket:[2]")
	p.mem(0x1000, pollfd(3, 1))
	p.thread(11, "7 0x1000 0x1 0x1f4 0x0 0x0 0x0 0x0 0x0")
	scan := func() {
		if _, err := listeningIn(p.root, "amd64", p.pid, []uint64{1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	scan() // lets the runtime open whatever it opens once
	before := countFds(t)
	for range 100 {
		scan()
	}
	if after := countFds(t); after != before {
		t.Errorf("%d fds open before 100 scans, %d after", before, after)
	}
}

func TestListeningInPermission(t *testing.T) {
	// Root reads every /proc, so the error is made up here.
	s := &procScan{pid: 7}
	err := s.fail("list fds", fmt.Errorf("open /proc/7/fd: %w", unix.EACCES))
	if !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrProcessGone) || !strings.Contains(err.Error(), permissionHint) {
		t.Errorf("got %v, want a permission error that says how to fix it", err)
	}
}

func countFds(t *testing.T) int {
	names, err := readDirNames("/proc/self/fd", make([]byte, 4096))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

func FuzzParseEpollEntry(f *testing.F) {
	f.Add([]byte("tfd:        6 events: 8000201d data: 3f87ae236f000001  pos:0 ino:44b6 sdev:9\n"))
	f.Add([]byte("tfd: 6 events:19 ino:1 sdev:"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, ok := parseEpollEntry(line)
		if !ok {
			return
		}
		again := fmt.Sprintf("tfd: 1 events: %x data: 0 pos:0 ino:%x sdev:%x", e.events, e.ino, e.sdev)
		if e2, ok := parseEpollEntry([]byte(again)); !ok || e2 != e {
			t.Errorf("parseEpollEntry(%q) = %+v, but %q parses to %+v, %v", line, e, again, e2, ok)
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	f.Add([]byte("288 0x3 0x2cd86624a000 0x2cd866238eec 0x0 0x0 0x0 0x2cd866238d58 0x4097ae\n"))
	f.Add([]byte("running\n"))
	f.Add([]byte("-1 0x0 0x0\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if nr, _, ok := parseSyscall(line); ok && nr < 0 {
			t.Errorf("parseSyscall(%q) accepted nr %d", line, nr)
		}
	})
}

// A permission error on a process that has just become a zombie is its
// exit, not something to warn about; on a live one it keeps the hint.
func TestPermissionErrorOfAZombieIsGone(t *testing.T) {
	for state, gone := range map[byte]bool{'Z': true, 'X': true, 'S': false, 'R': false} {
		p := newFakeProc(t, state)
		s := &procScan{dir: p.dir, pid: p.pid, buf: make([]byte, 4096), mem: -1}
		err := s.fail("read fd link", fs.ErrPermission)
		if errors.Is(err, ErrProcessGone) != gone {
			t.Errorf("state %c: %v; gone = %v, want %v", state, err, errors.Is(err, ErrProcessGone), gone)
		}
		if !gone && !strings.Contains(err.Error(), permissionHint) {
			t.Errorf("state %c: %v lacks the hint", state, err)
		}
	}
}
