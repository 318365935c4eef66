package supervisor

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/procfs"
)

// probeListening polls the worker's /proc until it waits on every socket,
// then calls ready. It polls fast at first (most programs listen within
// milliseconds) and slows down for slow starters; it runs only while the
// worker is starting.
func probeListening(ctx context.Context, pid int, inodes []uint64, log logrus.FieldLogger, ready func()) {
	interval := 5 * time.Millisecond
	warned := false
	for {
		missing, err := procfs.ListeningOn(pid, inodes)
		switch {
		case err == nil && len(missing) == 0:
			ready()
			return
		case errors.Is(err, procfs.ErrProcessGone):
			return // its exit event follows
		case err != nil && !warned:
			warned = true
			log.WithError(err).Warn("cannot see whether the worker listens; it will time out unless this clears (run drover as the workers' user, or use --ready notify)")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		interval = min(interval*2, 100*time.Millisecond)
	}
}
