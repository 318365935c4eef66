package supervisor

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/journal"
)

// The exec status channel runs from the trampoline to drover: a
// SOCK_SEQPACKET pair, close-on-exec in the worker, so a successful execve
// ends it (EOF) and a failed one first sends the reason. Before it execs,
// the trampoline also sends the worker's journal stream connections
// (SCM_RIGHTS, in a message that says streamsMessage), so that drover can
// tell when journald has read what the worker wrote (streams.awaitRead).

// streamsMessage is the data of the message that carries the streams.
const streamsMessage = "journal streams"

// streamsReadTimeout bounds how long a worker that exited stays unreaped
// while journald reads its last output: journald may be stuck, and the
// slot's restart waits for the reaping.
const streamsReadTimeout = time.Second

// streamsGrace is how long a worker stays unreaped after journald has read
// its output: journald reads a process's metadata (its cgroup, hence its
// unit) right after the read that brings its first line, and a process
// that is gone by then is logged without a unit (journald trusts the
// unit a stream names only from root).
const streamsGrace = 10 * time.Millisecond

// newExecStatus returns drover's end of a new status channel and the
// worker's, which the worker gets as an extra file.
func newExecStatus() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("status channel: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "exec status")
	defer ours.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("status channel: %w", err)
	}
	return conn.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "exec status (worker)"), nil
}

// sendStreams is the trampoline's side: it passes stdout and stderr, its
// journal streams, to drover. A status fd that is not a socket (an older
// drover across an upgrade) refuses it, which changes nothing else.
func sendStreams(statusFD int) {
	unix.Sendmsg(statusFD, []byte(streamsMessage), unix.UnixRights(1, 2), nil, 0)
}

// readExecStatus reads the channel to its end: what the trampoline said
// went wrong (empty when the exec succeeded), and the worker's journal
// streams if it sent them.
func readExecStatus(c *net.UnixConn) (string, streams) {
	defer c.Close()
	var msg []byte
	var got streams
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(2*4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if n == 0 && oobn == 0 || err != nil {
			return string(msg), got
		}
		if fds := rights(oob[:oobn]); len(fds) > 0 {
			got = append(got, fds...)
			continue
		}
		msg = append(msg, buf[:n]...)
	}
}

// rights returns the fds in a control message.
func rights(oob []byte) []int {
	cmsgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range cmsgs {
		if got, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// streams are drover's copies of a worker's journal stream connections.
type streams []int

// awaitRead keeps a worker that exited unreaped (the caller reaps after)
// until journald has read its output, so that journald still finds the
// process, in its cgroup, when it attributes its lines; then closes them.
func (st streams) awaitRead() {
	if len(st) == 0 {
		return
	}
	if journal.AwaitRead(st, streamsReadTimeout) {
		time.Sleep(streamsGrace)
	}
	for _, fd := range st {
		unix.Close(fd)
	}
}
