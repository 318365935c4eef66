package notify

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Systemd sends sd_notify datagrams to systemd: the service manager side of
// drover. Its methods are the messages drover sends; each returns the send
// error, which callers log (a lost notification is not fatal).
//
// go-systemd's daemon.SdNotify reads NOTIFY_SOCKET from the environment on
// every call and cannot be pointed at an explicit address; drover reads the
// address once (the environment may be scrubbed later, and tests run many
// supervisors in one process), so the few lines of sending are written here.
type Systemd struct {
	addr       string // "" when not run by systemd: every send is a no-op
	lastStatus string
}

// NewSystemd returns a sender to addr, systemd's NOTIFY_SOCKET ("" outside
// systemd: every message is then dropped).
func NewSystemd(addr string) *Systemd { return &Systemd{addr: addr} }

// maxExtend caps EXTEND_TIMEOUT_USEC: systemd reads it as an unsigned
// 64-bit count, and a day is more than any stop or start should take.
const maxExtend = 24 * time.Hour

// extendUsec is d as EXTEND_TIMEOUT_USEC, from 0 to maxExtend: a caller's
// sum that overflowed to a negative duration must not reach systemd as a
// negative number, which it cannot parse.
func extendUsec(d time.Duration) int64 {
	return max(0, min(d, maxExtend)).Microseconds()
}

// Status sends STATUS=line, only when the line changed.
func (n *Systemd) Status(line string) error {
	if line == n.lastStatus {
		return nil
	}
	n.lastStatus = line
	return n.send("STATUS=" + line)
}

// Ready sends READY=1 with the status line, and ERRNO= when errno is not 0
// (a failed reload: the old version still serves, which READY=1 says).
func (n *Systemd) Ready(status string, errno unix.Errno) error {
	n.lastStatus = status
	msg := "READY=1\nSTATUS=" + status
	if errno != 0 {
		msg += fmt.Sprintf("\nERRNO=%d", int(errno))
	}
	return n.send(msg)
}

// Reloading sends RELOADING=1 stamped with CLOCK_MONOTONIC, which systemd
// 253+ (Type=notify-reload) compares with the time it sent its signal.
func (n *Systemd) Reloading() error {
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	return n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", now.Nano()/1000))
}

// Stopping sends STOPPING=1 and asks for extend more time to stop.
func (n *Systemd) Stopping(extend time.Duration) error {
	return n.send(fmt.Sprintf("STOPPING=1\nEXTEND_TIMEOUT_USEC=%d", extendUsec(extend)))
}

// ExtendTimeout asks for d more time for the start or reload under way.
func (n *Systemd) ExtendTimeout(d time.Duration) error {
	return n.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", extendUsec(d)))
}

// Watchdog sends WATCHDOG=1.
func (n *Systemd) Watchdog() error { return n.send("WATCHDOG=1") }

// Final sends a last STATUS= that systemd keeps after the unit stopped.
func (n *Systemd) Final(status string) error { return n.send("STATUS=" + status) }

func (n *Systemd) send(state string) error {
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
