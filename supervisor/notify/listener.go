package notify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Message is one datagram a worker sent to drover's notify socket.
type Message struct {
	Pid    int
	Fields map[string]string
}

// maxDatagram bounds what is read from a worker; systemd itself
// accepts up to about 4 KiB of state plus credentials.
const maxDatagram = 4096

// Listener is the NOTIFY_SOCKET drover gives its workers: the
// same sd_notify protocol systemd speaks, so a program that notifies
// systemd notifies drover unchanged. Senders are identified by the kernel
// (SCM_CREDENTIALS), never by what they claim, so a worker's child cannot
// speak for it — systemd's NotifyAccess=main.
type Listener struct {
	conn *net.UnixConn
	// Addr is the NOTIFY_SOCKET value given to workers.
	Addr string
	uid  int
	buf  []byte
	oob  []byte
}

// Listen opens the socket in the abstract namespace: it needs no
// writable directory (ProtectSystem=strict, DynamicUser=) and vanishes with
// drover. Only processes in drover's network namespace can reach it, and the
// credentials check keeps out all but the workers.
func Listen() (*Listener, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("worker notify socket: %w", err)
	}
	addr := fmt.Sprintf("@drover/%d/%s/notify", unix.Getpid(), hex.EncodeToString(nonce[:]))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("worker notify socket %s: %w", addr, err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("worker notify socket %s: %w", addr, err)
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || sockErr != nil {
		conn.Close()
		return nil, fmt.Errorf("worker notify socket %s: SO_PASSCRED: %w", addr, errors.Join(err, sockErr))
	}
	return &Listener{conn: conn, Addr: addr, uid: unix.Getuid()}, nil
}

// Read returns the next datagram from a process of drover's own user, with
// its sender's pid. Workers run as drover's user; a datagram from any
// other uid (the abstract socket's name is visible in /proc/net/unix to
// every local user) is dropped here, before it is parsed or reaches the
// event loop, so a flood from a stranger costs a read and nothing more.
// Datagrams without credentials are dropped the same way. File
// descriptors sent along (FDSTORE=1) are closed: drover keeps none.
// Read is for one goroutine at a time.
func (s *Listener) Read() (Message, error) {
	if s.buf == nil {
		s.buf = make([]byte, maxDatagram)
		s.oob = make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*16))
	}
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(s.buf, s.oob)
		if err != nil {
			return Message{}, err
		}
		pid, ok := s.sender(s.oob[:oobn])
		if !ok {
			continue
		}
		return Message{Pid: pid, Fields: Parse(s.buf[:n])}, nil
	}
}

// sender reads the credentials of a datagram, closing any fds it carried;
// ok is false unless it came from a process of drover's uid.
func (s *Listener) sender(oob []byte) (pid int, ok bool) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, c := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&c); err == nil {
			pid, ok = int(cred.Pid), int(cred.Uid) == s.uid && cred.Pid > 0
		}
		if fds, err := unix.ParseUnixRights(&c); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return pid, ok
}

func (s *Listener) Close() error { return s.conn.Close() }

// Parse parses an sd_notify datagram: newline-separated KEY=VALUE
// assignments. Lines without '=' are ignored, as systemd does; the last
// assignment of a key wins.
func Parse(b []byte) map[string]string {
	fields := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		fields[k] = v
	}
	return fields
}

// Adopt takes the socket an earlier drover image listened on (drover
// upgrade): the workers keep sending to addr, the same socket.
func Adopt(f *os.File, addr string) (*Listener, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("adopt worker notify socket %s: %w", addr, err)
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("adopt worker notify socket %s: not a unix socket", addr)
	}
	return &Listener{conn: conn, Addr: addr, uid: unix.Getuid()}, nil
}

// SyscallConn is the socket's, for handing it over across exec.
func (s *Listener) SyscallConn() (syscall.RawConn, error) { return s.conn.SyscallConn() }
