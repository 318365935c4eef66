package journal

import (
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// StreamPath is journald's stdout stream socket: what systemd connects a
// service's stdout and stderr to (StandardOutput=journal).
const StreamPath = "/run/systemd/journal/stdout"

// streamSendBuffer is what systemd asks for on a service's stream.
const streamSendBuffer = 8 << 20

// ConnectStream opens a stdout stream connection to journald for one
// output of the calling process, as systemd does for a service, and
// returns its fd (close-on-exec; the caller dup2()s it onto 1 or 2).
// journald takes the sender's pid from the connection (SO_PEERCRED), so a
// process that connects and then execs logs under its own pid; lines get
// SYSLOG_IDENTIFIER identifier and priority (a leading <N> overrides it:
// level_prefix is on). Raw syscalls, no Go runtime machinery: it runs in
// drover's trampoline, between fork and the worker's exec.
//
// The header is journald's stdout stream protocol (src/journal/
// journald-stream.c): identifier, unit id, priority, level prefix,
// forward to syslog, to kmsg, to console, one per line. unit is the
// service the worker belongs to, as systemd sends it: journald attributes
// a line to it even when the writer exited before journald could read its
// cgroup (a program that fails at once), so `journalctl -u` still shows it.
func ConnectStream(identifier, unit string, priority int) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("journal stream: socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: StreamPath}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("journal stream: connect %s: %w", StreamPath, err)
	}
	unix.Shutdown(fd, unix.SHUT_RD)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, streamSendBuffer)
	header := identifier + "\n" + unit + "\n" + strconv.Itoa(priority) + "\n1\n0\n0\n0\n"
	for b := []byte(header); len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("journal stream: header: %w", err)
		}
		b = b[n:]
	}
	return fd, nil
}

// StreamID is the JOURNAL_STREAM value for fd: device and inode, as
// systemd sets it for a process whose stderr is a journal stream.
func StreamID(fd int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	return strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10), nil
}

// readPoll is how often AwaitRead looks at the send queues.
const readPoll = 2 * time.Millisecond

// AwaitRead waits until journald has read everything sent on the stream
// connections fds (their send queues, SIOCOUTQ, are empty) or timeout has
// passed, and says whether it had. A unix socket charges the bytes to the
// sender until the reader has taken them, so an empty queue means read;
// no event says so, hence the polling.
func AwaitRead(fds []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		queued := false
		for _, fd := range fds {
			if n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ); err == nil && n > 0 {
				queued = true
			}
		}
		if !queued {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(readPoll)
	}
}
