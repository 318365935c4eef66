package supervisor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sys/unix"
)

// systemdNotifier sends sd_notify datagrams to systemd.
//
// go-systemd's daemon.SdNotify reads NOTIFY_SOCKET from the environment on
// every call and cannot be pointed at an explicit address; drover reads the
// address once (the environment may be scrubbed later, and tests run many
// supervisors in one process), so the few lines of sending are written here.
type systemdNotifier struct {
	addr       string // "" when not run by systemd: every send is a no-op
	lastStatus string
}

func (n *systemdNotifier) send(state string) error {
	if n.addr == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr, err)
	}
	return nil
}

// status sends STATUS= only when the line changed, with extra fields
// (READY=1, ...) appended when given.
func (n *systemdNotifier) status(line string, extra ...string) error {
	if line == n.lastStatus && len(extra) == 0 {
		return nil
	}
	n.lastStatus = line
	return n.send(strings.Join(append([]string{"STATUS=" + line}, extra...), "\n"))
}

// notifyMessage is one datagram a worker sent to drover's notify socket.
type notifyMessage struct {
	pid    int
	fields map[string]string
}

// maxNotifyDatagram bounds what is read from a worker; systemd itself
// accepts up to about 4 KiB of state plus credentials.
const maxNotifyDatagram = 4096

// workerNotifySocket is the NOTIFY_SOCKET drover gives its workers: the
// same sd_notify protocol systemd speaks, so a program that notifies
// systemd notifies drover unchanged. Senders are identified by the kernel
// (SCM_CREDENTIALS), never by what they claim, so a worker's child cannot
// speak for it — systemd's NotifyAccess=main.
type workerNotifySocket struct {
	conn *net.UnixConn
	addr string // as given to workers
}

// listenWorkerNotify opens the socket in the abstract namespace: it needs no
// writable directory (ProtectSystem=strict, DynamicUser=) and vanishes with
// drover. Only processes in drover's network namespace can reach it, and the
// credentials check keeps out all but the workers.
func listenWorkerNotify() (*workerNotifySocket, error) {
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
	return &workerNotifySocket{conn: conn, addr: addr}, nil
}

// read returns the next datagram with its sender's pid. Datagrams without
// credentials are returned with pid 0 (the caller drops them). File
// descriptors sent along (FDSTORE=1) are closed: drover keeps none.
func (s *workerNotifySocket) read() (notifyMessage, error) {
	buf := make([]byte, maxNotifyDatagram)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*16))
	n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return notifyMessage{}, err
	}
	msg := notifyMessage{fields: parseNotify(buf[:n])}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return msg, nil
	}
	for _, c := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&c); err == nil {
			msg.pid = int(cred.Pid)
		}
		if fds, err := unix.ParseUnixRights(&c); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return msg, nil
}

func (s *workerNotifySocket) close() error { return s.conn.Close() }

// parseNotify parses an sd_notify datagram: newline-separated KEY=VALUE
// assignments. Lines without '=' are ignored, as systemd does; the last
// assignment of a key wins.
func parseNotify(b []byte) map[string]string {
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
