package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ListenSpec is one --listen value: [NAME=]ADDRESS.
type ListenSpec struct {
	Name    string
	Network string // "tcp" or "unix"
	Address string // host:port, or a filesystem path for unix
}

func (l ListenSpec) String() string {
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return l.Address
}

// ParseListen parses --listen: 127.0.0.1:8080, [::1]:8080, :8080,
// unix:/path, each optionally prefixed by NAME= (the LISTEN_FDNAMES entry).
func ParseListen(s string) (ListenSpec, error) {
	spec := ListenSpec{Name: defaultFDName}
	rest := s
	// A name never contains ':' (LISTEN_FDNAMES is ':'-separated), so an
	// '=' before the first ':' starts a name.
	if eq := strings.IndexByte(s, '='); eq >= 0 && !strings.Contains(s[:eq], ":") {
		spec.Name, rest = s[:eq], s[eq+1:]
		if err := checkFDName(spec.Name); err != nil {
			return ListenSpec{}, invalid(fmt.Errorf("--listen %q: %w", s, err))
		}
	}
	if path, ok := strings.CutPrefix(rest, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return ListenSpec{}, invalid(fmt.Errorf("--listen %q: want unix:/absolute/path", s))
		}
		spec.Network, spec.Address = "unix", path
		return spec, nil
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return ListenSpec{}, invalid(fmt.Errorf("--listen %q: want HOST:PORT, [IPv6]:PORT, :PORT or unix:/path", s))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return ListenSpec{}, invalid(fmt.Errorf("--listen %q: port %q is not a number from 0 to 65535", s, port))
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return ListenSpec{}, invalid(fmt.Errorf("--listen %q: host %q is not an IP address", s, host))
	}
	spec.Network, spec.Address = "tcp", rest
	return spec, nil
}

func checkFDName(name string) error {
	if name == "" || len(name) > 255 {
		return errors.New("fd name must be 1 to 255 characters")
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == ':' {
			return fmt.Errorf("fd name %q: only printable ASCII without spaces or ':'", name)
		}
	}
	return nil
}

// Open opens the --listen sockets. It creates them with plain
// syscalls rather than net.Listen because the socket is shared with every
// worker: O_NONBLOCK lives on the open file description, and the workers
// must get it the way systemd creates it (blocking), whatever they run on.
func Open(specs []ListenSpec) ([]Socket, error) {
	var socks []Socket
	for _, spec := range specs {
		s, err := openSocket(spec)
		if err != nil {
			for _, s := range socks {
				s.Close()
			}
			return nil, err
		}
		socks = append(socks, s)
	}
	return socks, nil
}

func openSocket(spec ListenSpec) (Socket, error) {
	var (
		family int
		sa     unix.Sockaddr
		unlink string
	)
	switch spec.Network {
	case "unix":
		if err := RemoveStale(spec.Address); err != nil {
			return Socket{}, invalid(fmt.Errorf("listen %s: %w", spec, err))
		}
		family, sa, unlink = unix.AF_UNIX, &unix.SockaddrUnix{Name: spec.Address}, spec.Address
	default:
		var err error
		if family, sa, err = tcpSockaddr(spec.Address); err != nil {
			return Socket{}, invalid(fmt.Errorf("listen %s: %w", spec, err))
		}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Socket{}, fmt.Errorf("listen %s: socket: %w", spec, err)
	}
	f := os.NewFile(uintptr(fd), spec.Name)
	fail := func(op string, err error) (Socket, error) {
		f.Close()
		return Socket{}, invalid(fmt.Errorf("listen %s: %s: %w", spec, op, err))
	}
	if family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
	}
	if family == unix.AF_INET6 {
		// ":PORT" means every address, IPv4 too, as with net.Listen.
		v6only := 1
		if sa.(*unix.SockaddrInet6).Addr == [16]byte{} {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail("listen", err)
	}
	s, err := newSocket(f, spec.Name)
	if err != nil {
		f.Close()
		return Socket{}, err
	}
	s.unlink = unlink
	return s, nil
}

func tcpSockaddr(address string) (int, unix.Sockaddr, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return 0, nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, nil, fmt.Errorf("port %q: %w", portStr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if host == "" {
		// Every address: dual-stack where the kernel has IPv6.
		if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
			unix.Close(fd)
			return unix.AF_INET6, &unix.SockaddrInet6{Port: port}, nil
		}
		return unix.AF_INET, &unix.SockaddrInet4{Port: port}, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return 0, nil, fmt.Errorf("host %q is not an IP address", host)
	}
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return unix.AF_INET, sa, nil
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return unix.AF_INET6, sa, nil
}

// RemoveStale removes a socket file nobody listens on any more (a
// previous drover that was killed), and refuses to touch anything else.
func RemoveStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("%s: address already in use", path)
	}
	return os.Remove(path)
}
