package notify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

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
	return &Listener{conn: conn, Addr: addr}, nil
}

// read returns the next datagram with its sender's pid. Datagrams without
// credentials are returned with pid 0 (the caller drops them). File
// descriptors sent along (FDSTORE=1) are closed: drover keeps none.
func (s *Listener) Read() (Message, error) {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*16))
	n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return Message{}, err
	}
	msg := Message{Fields: Parse(buf[:n])}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return msg, nil
	}
	for _, c := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&c); err == nil {
			msg.Pid = int(cred.Pid)
		}
		if fds, err := unix.ParseUnixRights(&c); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return msg, nil
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
