package proctree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// WaitExit returns nil once process pid has exited, without reaping it, or
// the context's error, wrapped, when ctx ends first. A pid that no longer
// exists counts as exited.
//
// It is for waiting on many workers with few threads: os.Process.Wait (Go
// 1.26, via pidfd or not) blocks one OS thread in waitid for each waiting
// child. WaitExit parks its goroutine in the runtime poller on a pidfd,
// which becomes readable when the process exits; the caller then calls
// Cmd.Wait, which finds a zombie and returns at once. pid must be our
// unreaped child, or another process we know is alive: pidfd_open takes a
// number, which is only safe from reuse while the process is unreaped.
func WaitExit(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.EINVAL) {
		// Before Linux 5.10 there is no PIDFD_NONBLOCK flag.
		if fd, err = unix.PidfdOpen(pid, 0); err == nil {
			err = unix.SetNonblock(fd, true)
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wait for pid %d: open pidfd: %w", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("wait for pid %d: %w", pid, err)
	}
	stop := context.AfterFunc(ctx, func() {
		f.SetReadDeadline(time.Unix(1, 0)) // wakes the parked Read
	})
	defer stop()
	err = rc.Read(func(fd uintptr) bool { return exited(int(fd), 0) })
	if ctx.Err() != nil {
		return fmt.Errorf("wait for pid %d: %w", pid, ctx.Err())
	}
	if err != nil {
		// Not in the poller (a kernel whose pidfds epoll refuses): wait
		// in poll(2) on this thread instead.
		return waitPoll(ctx, pid, fd)
	}
	return nil
}

// exited polls the pidfd: readable means the process has exited.
func exited(fd, timeoutMs int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, timeoutMs)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
}

func waitPoll(ctx context.Context, pid, fd int) error {
	for !exited(fd, 100) {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, ctx.Err())
		}
	}
	return nil
}
