package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/procfs"
)

// maxListenFDs bounds LISTEN_FDS: systemd itself refuses more than a few
// hundred sockets per service; a larger number is a corrupt environment.
const maxListenFDs = 1024

// defaultFDName is what sd_listen_fds_with_names reports for an fd without
// a name, so workers see the same thing here as under systemd-socket-activate.
const defaultFDName = "unknown"

// Socket is one listening socket handed to every worker.
type Socket struct {
	File  *os.File
	Name  string // its LISTEN_FDNAMES entry
	Addr  string // for logs: the local address
	Inode uint64 // recognises the socket inside a worker's /proc
	// unlink is the unix socket path drover created and removes on close.
	unlink string
}

// Close closes the socket (and removes a unix socket file drover created).
func (s Socket) Close() error {
	err := s.File.Close()
	if s.unlink != "" {
		os.Remove(s.unlink)
	}
	return err
}

// FromSystemd takes the sockets systemd passed, in order, with their names.
// ok is false when the process was not socket-activated.
//
// Variables meant for another process (LISTEN_PID unset, empty or not
// ours) mean not activated, and are removed from the environment.
//
// go-systemd's activation.Files does the taking (it checks LISTEN_PID, sets
// CLOEXEC and unsets the variables), but it silently returns nothing for a
// malformed LISTEN_FDS, does not check the name count, and renames an empty
// name entry to LISTEN_FD_<n>. So the checks come first here (a corrupt
// environment must be a clear error, not "no sockets"), and the names are
// taken from LISTEN_FDNAMES as systemd wrote it: an empty entry stays empty,
// so that workers get the same LISTEN_FDNAMES drover got.
func FromSystemd() (socks []Socket, ok bool, err error) {
	fdsVar, pidVar := os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID")
	if pidVar != strconv.Itoa(os.Getpid()) {
		// Unset, empty or another process's pid: meant for someone else
		// (a parent or a shell that leaked them), so not ours, as for
		// sd_listen_fds(3). Removed, so no worker mistakes them for its
		// own. A pid that is no number is a corrupt environment.
		if _, err := strconv.Atoi(pidVar); err != nil && pidVar != "" {
			return nil, false, invalid(fmt.Errorf("LISTEN_PID=%q is not a pid", pidVar))
		}
		unsetActivationEnv()
		return nil, false, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 1 || n > maxListenFDs {
		return nil, false, invalid(fmt.Errorf("LISTEN_FDS=%q: want a count from 1 to %d", fdsVar, maxListenFDs))
	}
	names, err := fdNames(n)
	if err != nil {
		return nil, false, err
	}
	files := activation.Files(true)
	if len(files) != n {
		return nil, false, fmt.Errorf("take %d sockets from systemd: got %d", n, len(files))
	}
	for i, f := range files {
		s, err := newSocket(f, names[i])
		if err != nil {
			closeFiles(files)
			return nil, false, err
		}
		socks = append(socks, s)
	}
	return socks, true, nil
}

// fdNames returns the n names LISTEN_FDNAMES gives, or defaultFDName for
// every fd when it is unset (a socket activator that names nothing).
func fdNames(n int) ([]string, error) {
	names, ok := os.LookupEnv("LISTEN_FDNAMES")
	if !ok {
		return slices.Repeat([]string{defaultFDName}, n), nil
	}
	list := strings.Split(names, ":")
	if len(list) != n {
		return nil, invalid(fmt.Errorf("LISTEN_FDNAMES=%q has %d names for LISTEN_FDS=%d sockets", names, len(list), n))
	}
	return list, nil
}

func unsetActivationEnv() {
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID"} {
		os.Unsetenv(k)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// newSocket checks that f is a listening stream socket: drover hands the
// listening socket itself to every worker (Accept=no), and a connected
// socket (Accept=yes) or a datagram socket would make no sense N times over.
func newSocket(f *os.File, name string) (Socket, error) {
	fd := int(f.Fd())
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return Socket{}, invalid(fmt.Errorf("fd %d (%s) is not a socket: %w", fd, name, err))
	} else if typ != unix.SOCK_STREAM && typ != unix.SOCK_SEQPACKET {
		return Socket{}, invalid(fmt.Errorf("fd %d (%s) is not a stream socket: drover shares listening stream sockets (ListenStream=)", fd, name))
	}
	if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
		return Socket{}, invalid(fmt.Errorf("fd %d (%s) is not listening: drover needs Accept=no in the .socket unit", fd, name))
	}
	ino, err := procfs.SocketInode(f)
	if err != nil {
		return Socket{}, err
	}
	addr := "?"
	if sa, err := unix.Getsockname(fd); err == nil {
		addr = sockaddrString(sa)
	}
	return Socket{File: f, Name: name, Addr: addr, Inode: ino}, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrUnix:
		return "unix:" + a.Name
	}
	return "?"
}

// ErrInvalid marks errors in what drover was given (the activation
// environment, --listen addresses, a socket that is not a listening stream
// socket), as opposed to failures of the system.
var ErrInvalid = errors.New("invalid socket configuration")

// invalidError keeps its own message while errors.Is(err, ErrInvalid).
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }
func invalid(err error) error          { return invalidError{err} }

// Adopt takes a listening socket an earlier drover image handed over
// across exec (drover upgrade), checked as systemd's are. unlink is the
// unix socket path that image created and that Close removes ("": none).
func Adopt(f *os.File, name, unlink string) (Socket, error) {
	s, err := newSocket(f, name)
	if err != nil {
		return Socket{}, err
	}
	s.unlink = unlink
	return s, nil
}

// Unlink is the unix socket path drover created for s, "" if none.
func (s Socket) Unlink() string { return s.unlink }

// FD is c's descriptor, read without putting it in blocking mode as
// os.File.Fd would: on a file description the netpoller shares, that
// would turn every other user blocking too. For handing c over across
// exec (drover upgrade).
func FD(c syscall.Conn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	if fd < 0 {
		return -1, errors.New("no descriptor")
	}
	return fd, nil
}
