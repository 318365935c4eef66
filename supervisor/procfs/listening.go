package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Workers are unmodified programs: most never send READY=1, and a fixed
// delay would either slow every start or let traffic reach a worker that is
// still loading. What does not lie is the kernel's view of the worker: once
// it asks to be woken for connections on a socket, connections queued there
// will be served. So readiness is read from /proc/<pid>, and it costs nothing
// to the worker.
//
// A socket counts as waited on when
//   - an epoll instance of the process has it in its interest set with
//     EPOLLIN (Go's netpoller, libuv/node, python's asyncio and selectors,
//     nginx...). Event loops register a listener when they start serving
//     it, and a connection arriving before their next epoll_wait waits in
//     the backlog, it is not lost. Registering is not serving, though: a Go
//     program registers at net.Listen/net.FileListener, so one that does
//     slow work between that and Serve looks ready early; and os.NewFile
//     registers a nonblocking fd at once, which is one more reason workers
//     get their sockets blocking (as systemd hands them). Requiring a
//     thread blocked in epoll_wait instead would miss busy programs, whose
//     runtime polls without blocking.
//   - a thread of the process is blocked in accept/accept4 on it (C-style
//     and python blocking servers), or in poll/ppoll/select/pselect6 with
//     the socket among the fds it waits to read (python's socketserver and
//     http.server poll).
//
// Not detected: io_uring accepts, 32-bit processes (their syscall numbers
// differ), kernels whose eventpoll fdinfo lacks ino:, and children of the
// worker (a pre-forking master that never accepts itself is never seen as
// ready). Architectures other than amd64 and arm64 are epoll only.
//
// Reading /proc/<pid>/fd, task/*/syscall and mem of another user needs
// ptrace rights over the worker: drover runs as root or as the workers' user
// (and is their parent, which satisfies Yama's ptrace_scope=1).

// ErrProcessGone: the process exited (or was reaped) while being inspected.
// The caller waits for its exit event instead of reporting an error.
var ErrProcessGone = errors.New("process gone")

// readable is EPOLLIN|EPOLLRDNORM; poll(2)'s POLLIN|POLLRDNORM have the same
// values. A listening socket signals a pending connection with both.
const readable = unix.EPOLLIN | unix.EPOLLRDNORM

// permissionHint is appended to permission errors, which a user can fix.
const permissionHint = "drover must run as root or as the workers' user"

// SocketInode returns the inode of the socket f: the one identity a socket
// keeps across fork, exec and dup, whatever fd number a worker moves it to.
// It uses SyscallConn, not f.Fd(): Fd puts a file that Go made nonblocking
// back into blocking mode, and the caller's file is not ours to change.
func SocketInode(f *os.File) (uint64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("stat socket %s: %w", f.Name(), err)
	}
	var st unix.Stat_t
	var statErr error
	if err := rc.Control(func(fd uintptr) { statErr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, fmt.Errorf("stat socket %s: %w", f.Name(), err)
	}
	if statErr != nil {
		return 0, fmt.Errorf("stat socket %s: %w", f.Name(), statErr)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, fmt.Errorf("stat socket %s: mode %#o is not a socket", f.Name(), st.Mode)
	}
	return st.Ino, nil
}

// ListeningOn returns the socket inodes, among inodes, that process pid does
// not wait on yet, in their order in inodes. An error wrapping
// ErrProcessGone means the process has exited (it may still be a zombie);
// other errors (permission above all) mean its state cannot be seen.
//
// It is polled every few milliseconds while a worker starts, so it reads as
// little as it can: one readlink per fd, the fdinfo of eventpoll fds only,
// and the threads' syscalls only when epoll did not account for everything.
func ListeningOn(pid int, inodes []uint64) (missing []uint64, err error) {
	return listeningIn("/proc", runtime.GOARCH, pid, inodes)
}

// listeningIn is ListeningOn over the proc tree at proc (a fake one in
// tests), reading thread syscalls numbered as on goarch.
func listeningIn(proc, goarch string, pid int, inodes []uint64) ([]uint64, error) {
	if len(inodes) == 0 {
		return nil, nil
	}
	s := &procScan{dir: proc + "/" + strconv.Itoa(pid), pid: pid, goarch: goarch,
		inodes: inodes, found: make([]bool, len(inodes)), buf: make([]byte, 4096), mem: -1}
	defer s.closeMem()
	if err := s.scan(); err != nil {
		return nil, err
	}
	var missing []uint64
	for i, ino := range inodes {
		if !s.found[i] {
			missing = append(missing, ino)
		}
	}
	if len(missing) > 0 && s.vanished {
		// Files disappearing under us may be the whole process going:
		// say so rather than report it as not listening.
		if err := s.checkAlive(); err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// procScan is the state of one listeningIn call.
type procScan struct {
	dir    string // /proc/<pid>
	pid    int
	goarch string
	inodes []uint64
	found  []bool
	// sockets maps the process's fds that hold a wanted socket to its index
	// in inodes, for the syscall arguments that name fds.
	sockets  []fdSocket
	vanished bool   // an fd or thread went away during the scan
	buf      []byte // reused by every read
	mem      int    // fd of /proc/<pid>/mem, opened on first use, or -1
	sockDev  uint64 // sockfsDev(), looked up on first use, or 0
}

type fdSocket struct{ fd, index int }

func (s *procScan) scan() error {
	names, err := readDirNames(s.dir+"/fd", s.buf)
	if err != nil {
		return s.fail("list fds", err)
	}
	if len(names) == 0 {
		// A zombie keeps its /proc entry but has no fds left.
		if err := s.checkAlive(); err != nil {
			return err
		}
	}
	var epolls []string
	for _, name := range names {
		n, err := unix.Readlink(s.dir+"/fd/"+name, s.buf)
		if s.skip(err) {
			continue
		} else if err != nil {
			return s.fail("read fd link", err)
		}
		target := string(s.buf[:n])
		if target == "anon_inode:[eventpoll]" {
			epolls = append(epolls, name)
			continue
		}
		if ino, ok := parseSocketLink(target); ok {
			fd, err := strconv.Atoi(name)
			if i := slices.Index(s.inodes, ino); err == nil && i >= 0 {
				s.sockets = append(s.sockets, fdSocket{fd, i})
			}
		}
	}
	for _, name := range epolls {
		info, err := s.read(s.dir + "/fdinfo/" + name)
		if s.skip(err) {
			continue
		} else if err != nil {
			return s.fail("read epoll fdinfo", err)
		}
		if err := s.markEpoll(info); err != nil {
			return err
		}
	}
	if !slices.Contains(s.found, false) || len(s.sockets) == 0 {
		// No fd of the process holds a missing socket: no thread can be
		// blocked on one.
		return nil
	}
	return s.scanThreads()
}

// markEpoll marks the wanted sockets an eventpoll fdinfo watches for input.
// Entries are matched by inode and by device: inode numbers are only unique
// per filesystem, and a tty (devpts) or cgroup file in the same interest
// set could carry a socket's number.
func (s *procScan) markEpoll(info []byte) error {
	for line := range bytes.Lines(info) {
		e, ok := parseEpollEntry(line)
		if !ok || e.events&readable == 0 {
			continue
		}
		i := slices.Index(s.inodes, e.ino)
		if i < 0 {
			continue
		}
		if s.sockDev == 0 {
			d, err := sockfsDev()
			if err != nil {
				return err
			}
			s.sockDev = d
		}
		if e.sdev == s.sockDev {
			s.found[i] = true
		}
	}
	return nil
}

func (s *procScan) scanThreads() error {
	tids, err := readDirNames(s.dir+"/task", s.buf)
	if err != nil {
		return s.fail("list threads", err)
	}
	for _, tid := range tids {
		path := s.dir + "/task/" + tid + "/syscall"
		line, err := s.read(path)
		if s.skip(err) {
			continue
		} else if err != nil {
			return s.fail("read thread syscall", err)
		}
		nr, args, ok := parseSyscall(line)
		if !ok {
			continue // running, or blocked outside a syscall
		}
		var fds []int
		switch waitCallOf(s.goarch, nr) {
		case waitAccept:
			s.markFd(int(args[0]))
			continue
		case waitPoll:
			fds, err = s.pollFds(args[0], args[1])
		case waitSelect:
			fds, err = s.selectFds(args[0], args[1])
		default:
			continue
		}
		if err != nil {
			return err
		}
		// The fd list lives in the worker's memory and says what the thread
		// waits on only while it is still in the same call: read the
		// syscall line again to be sure it is.
		if len(fds) > 0 && s.sameCall(path, line) {
			for _, fd := range fds {
				s.markFd(fd)
			}
		}
	}
	return nil
}

// sameCall reports whether the thread's syscall line still reads line.
func (s *procScan) sameCall(path string, line []byte) bool {
	before := string(line) // line aliases s.buf
	again, err := s.read(path)
	return err == nil && string(again) == before
}

// pollFds returns the fds a poll/ppoll call at addr (nfds entries) waits to
// read. Only the first 1024 entries are read: a starting worker that polls
// more fds than that is not expected.
func (s *procScan) pollFds(addr, nfds uint64) ([]int, error) {
	const entry = 8 // struct pollfd: int fd; short events, revents
	nfds = min(nfds, 1024)
	b := make([]byte, nfds*entry)
	if ok, err := s.readMem(b, addr); !ok {
		return nil, err
	}
	var fds []int
	for off := 0; off+entry <= len(b); off += entry {
		fd := int32(binary.NativeEndian.Uint32(b[off:]))
		events := binary.NativeEndian.Uint16(b[off+4:])
		if fd >= 0 && events&readable != 0 {
			fds = append(fds, int(fd))
		}
	}
	return fds, nil
}

// selectFds returns the wanted fds set in the read fd_set at addr of a
// select/pselect6 call over nfds fds.
func (s *procScan) selectFds(nfds, addr uint64) ([]int, error) {
	var fds []int
	if addr == 0 {
		return nil, nil
	}
	for _, sock := range s.sockets {
		if uint64(sock.fd) >= nfds {
			continue
		}
		var word [8]byte // fd_set is an array of unsigned long
		if ok, err := s.readMem(word[:], addr+uint64(sock.fd/64)*8); !ok {
			return nil, err
		}
		if binary.NativeEndian.Uint64(word[:])&(1<<(sock.fd%64)) != 0 {
			fds = append(fds, sock.fd)
		}
	}
	return fds, nil
}

// readMem reads the worker's memory at addr. ok is false when it could not;
// err is set only when that is a reason to give up (permission), not when
// the address is stale or the process went away.
func (s *procScan) readMem(b []byte, addr uint64) (ok bool, err error) {
	if s.mem < 0 {
		fd, err := unix.Open(s.dir+"/mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if s.skip(err) {
			return false, nil
		} else if err != nil {
			return false, s.fail("open memory", err)
		}
		s.mem = fd
	}
	n, err := unix.Pread(s.mem, b, int64(addr))
	return err == nil && n == len(b), nil
}

func (s *procScan) closeMem() {
	if s.mem >= 0 {
		unix.Close(s.mem)
	}
}

func (s *procScan) markFd(fd int) {
	for _, sock := range s.sockets {
		if sock.fd == fd {
			s.found[sock.index] = true
		}
	}
}

// skip reports whether err is one fd or thread vanishing mid-scan, which is
// normal for a starting process; it notes it for the final check.
func (s *procScan) skip(err error) bool {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		s.vanished = true
		return true
	}
	return false
}

// fail wraps err from doing what on the process.
func (s *procScan) fail(what string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%s of pid %d: %w: %w", what, s.pid, ErrProcessGone, err)
	case errors.Is(err, fs.ErrPermission) && s.zombie():
		// A process that exited mid-scan keeps its pid but not its fds:
		// the kernel refuses their links, which is not a permission
		// problem to warn about.
		return fmt.Errorf("%s of pid %d: %w: it exited", what, s.pid, ErrProcessGone)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s of pid %d (%s): %w", what, s.pid, permissionHint, err)
	}
	return fmt.Errorf("%s of pid %d: %w", what, s.pid, err)
}

// checkAlive returns an ErrProcessGone error when the process no longer
// exists or is a zombie (or dead, X) waiting to be reaped.
func (s *procScan) checkAlive() error {
	stat, err := s.read(s.dir + "/stat")
	if err != nil {
		return s.fail("read stat", err)
	}
	if zombieStat(stat) {
		return fmt.Errorf("pid %d is a zombie: %w", s.pid, ErrProcessGone)
	}
	return nil
}

// zombie reports whether the process is a zombie now, false when that
// cannot be read.
func (s *procScan) zombie() bool {
	stat, err := s.read(s.dir + "/stat")
	return err == nil && zombieStat(stat)
}

// zombieStat reads the state of /proc/PID/stat: "pid (comm) state ...",
// where comm may hold spaces and parentheses.
func zombieStat(stat []byte) bool {
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		state := stat[i+2]
		return state == 'Z' || state == 'X'
	}
	return false
}

// read returns the contents of a small /proc file in s.buf, valid until the
// next read. /proc files report size 0, so it reads until EOF.
func (s *procScan) read(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := unix.Read(fd, s.buf[n:])
		if err == unix.EINTR {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		} else if m == 0 {
			return s.buf[:n], nil
		}
		n += m
	}
}

// readDirNames lists a /proc directory with getdents into buf, without the
// stat per entry or poller registration that os.ReadDir would add.
func readDirNames(path string, buf []byte) ([]string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("list %s: %w", path, err)
		} else if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// sockfsDev returns the device of sockfs, the filesystem every socket
// lives on, encoded as /proc fdinfo prints it (the kernel's internal
// major<<20|minor, not stat's encoding). It stats a throwaway socket.
func sockfsDev() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open a socket to find sockfs: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat a socket to find sockfs: %w", err)
	}
	return uint64(unix.Major(st.Dev))<<20 | uint64(unix.Minor(st.Dev)), nil
}
