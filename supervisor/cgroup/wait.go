package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often WaitEmpty rereads cgroup.events when inotify
// cannot be used.
const pollInterval = 10 * time.Millisecond

// WaitEmpty returns nil once no live process is left in the cgroup or below
// it (cgroup.events "populated 0"), or the context's error, wrapped, when
// ctx ends first. A cgroup that was removed counts as empty.
//
// The kernel signals each change of cgroup.events as a file modification,
// so WaitEmpty sleeps in inotify, on the Go runtime's poller: a waiting
// worker costs a parked goroutine, not an OS thread. Where inotify is not
// available it polls every 10ms instead.
func (w *Worker) WaitEmpty(ctx context.Context) error {
	events := w.file("cgroup.events")
	watch, err := watchModify(events)
	if err != nil {
		return w.pollEmpty(ctx)
	}
	defer watch.Close()
	stop := context.AfterFunc(ctx, func() {
		// Wakes the Read below; a past deadline makes it fail at once.
		watch.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	buf := make([]byte, 4096)
	for {
		// Read after the watch is in place, so no change can slip
		// between this check and the Read.
		if done, err := w.emptyNow(); done || err != nil {
			return err
		}
		if _, err := watch.Read(buf); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for cgroup %s to empty: %w", w.dir, ctx.Err())
			}
			return fmt.Errorf("wait for cgroup %s to empty: %w", w.dir, err)
		}
	}
}

func (w *Worker) emptyNow() (bool, error) {
	busy, err := populated(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("wait for cgroup %s to empty: %w", w.dir, err)
	}
	return !busy, nil
}

func (w *Worker) pollEmpty(ctx context.Context) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if done, err := w.emptyNow(); done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for cgroup %s to empty: %w", w.dir, ctx.Err())
		case <-tick.C:
		}
	}
}

// watchModify returns a non-blocking inotify descriptor watching name for
// modification, as a *os.File so reads park in the runtime poller.
func watchModify(name string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, name, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "inotify:"+name), nil
}
