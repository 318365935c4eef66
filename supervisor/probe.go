package supervisor

import (
	"context"
	"errors"
	"time"
)

// probeListening polls the worker's /proc until it waits on every socket,
// then posts evReady. It polls fast at first (most programs listen within
// milliseconds) and slows down for slow starters; it runs only while the
// worker is starting.
func (s *Supervisor) probeListening(ctx context.Context, w *worker) {
	inodes := make([]uint64, len(s.sockets))
	for i, sock := range s.sockets {
		inodes[i] = sock.Inode
	}
	interval := 5 * time.Millisecond
	warned := false
	for {
		missing, err := listeningOn(w.pid, inodes)
		switch {
		case err == nil && len(missing) == 0:
			s.post(evReady{w, "listen"})
			return
		case errors.Is(err, errProcessGone):
			return // its exit event follows
		case err != nil && !warned:
			warned = true
			s.workerLog(w).WithError(err).Warn("cannot see whether the worker listens; it will time out unless this clears (run drover as the workers' user, or use --ready notify)")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		interval = min(interval*2, 100*time.Millisecond)
	}
}
