package journal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// SocketPath is journald's native socket.
	SocketPath = "/run/systemd/journal/socket"
	// SendTimeout is how long one entry may wait for journald to
	// take it before drover calls journald slow and falls back to stderr.
	// It is long enough for journald's usual pauses (rotating or syncing a
	// file) and short next to the time a worker needs to fill a 4 MiB
	// queue at any realistic rate, so the fallback comes before drops.
	SendTimeout = time.Second
	// RetryAfter is how long output stays on stderr after journald
	// failed, before the next entry tries journald again.
	RetryAfter = 10 * time.Second
	// sendBuffer, as libsystemd asks for: many entries in flight.
	sendBuffer = 8 << 20
)

// Conn sends entries to journald's native socket.
//
// go-systemd's journal.Send implements the same protocol, and
// journal.StderrIsJournalStream is used above, but Send is wrong for this
// job in three ways: it has no deadline, so a journald that stops reading
// blocks the sender for good (no fallback, and a goroutine that cannot be
// ended); its socket path is fixed at build time, so a test cannot put a
// fake journald in its place; and it prints to os.Stderr by itself. The
// protocol is small and stable (systemd.io/JOURNAL_NATIVE_PROTOCOL), so it
// is written here. Not safe for concurrent use: Link serializes it.
type Conn struct {
	path    string
	timeout time.Duration
	conn    *net.UnixConn
}

// NewConn returns a connection to the journald socket at path (connected
// on first use) whose sends wait at most timeout.
func NewConn(path string, timeout time.Duration) *Conn {
	return &Conn{path: path, timeout: timeout}
}

func (c *Conn) dial() error {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: c.path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("connect to journald at %s: %w", c.path, err)
	}
	// A connected socket makes the kernel wake the sender when journald
	// reads, instead of leaving it to the deadline, when journald's queue
	// is full. A bigger buffer is best effort: SO_SNDBUFFORCE needs root.
	conn.SetWriteBuffer(sendBuffer)
	if raw, err := conn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer)
		})
	}
	c.conn = conn
	return nil
}

// send sends one encoded entry, waiting at most c.timeout.
func (c *Conn) Send(rec []byte) error {
	redialed := false
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return err
		}
		redialed = true
	}
	for {
		c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
		_, err := c.conn.Write(rec)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS):
			return c.sendMemfd(rec)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("journald at %s took no entry within %v", c.path, c.timeout)
		}
		// The socket may have been replaced (journald restarted outside
		// socket activation): connect again, once.
		c.Close()
		if redialed {
			return fmt.Errorf("send to journald at %s: %w", c.path, err)
		}
		if err := c.dial(); err != nil {
			return err
		}
		redialed = true
	}
}

// sendMemfd sends an entry too big for a datagram as journald takes it: a
// sealed memfd passed with SCM_RIGHTS in an empty datagram.
func (c *Conn) sendMemfd(rec []byte) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("journal entry of %d bytes: memfd: %w", len(rec), err)
	}
	f := os.NewFile(uintptr(fd), "memfd:journal-entry")
	defer f.Close()
	if _, err := f.Write(rec); err != nil {
		return fmt.Errorf("journal entry of %d bytes: write memfd: %w", len(rec), err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("journal entry of %d bytes: seal memfd: %w", len(rec), err)
	}
	// net.UnixConn refuses WriteMsgUnix on a connected datagram socket, so
	// sendmsg(2) goes through the raw connection, which keeps the deadline.
	raw, err := c.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("journal entry of %d bytes: %w", len(rec), err)
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	var sendErr error
	err = raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), nil, unix.UnixRights(int(f.Fd())), nil, 0)
		return sendErr != unix.EAGAIN
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return fmt.Errorf("send journal entry of %d bytes to %s: %w", len(rec), c.path, err)
	}
	return nil
}

func (c *Conn) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}
