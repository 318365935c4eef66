package supervisor

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/procfs"
)

// probeListening polls the worker's /proc until it waits on every socket,
// then calls ready. It polls every millisecond for the first
// probeFastFor (most programs, Node included, listen within tens of
// milliseconds, and every millisecond a replacement is not seen ready is
// capacity lost), then slows down, doubling up to 100 ms, for slow
// starters. It runs only while the worker is starting; one probe costs
// 30-60 µs of CPU (make bench, BenchmarkListeningOn).
func probeListening(ctx context.Context, pid int, inodes []uint64, log logrus.FieldLogger, ready func()) {
	const probeFastFor = 200 * time.Millisecond
	start := time.Now()
	interval := time.Millisecond
	warned := false
	for {
		missing, err := procfs.ListeningOn(pid, inodes)
		switch {
		case err == nil && len(missing) == 0:
			ready()
			return
		case errors.Is(err, procfs.ErrProcessGone):
			// Most likely it exited, and its exit event cancels ctx. But a
			// worker whose exec runs from a thread other than the leader
			// shows a zombie leader for a moment (de_thread), so keep
			// looking rather than give up on a live worker.
		case err != nil && !warned:
			warned = true
			log.WithError(err).Warn("cannot see whether the worker listens; it will time out unless this clears (run drover as the workers' user, or use --ready notify)")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		if time.Since(start) >= probeFastFor {
			interval = min(interval*2, 100*time.Millisecond)
		}
	}
}
