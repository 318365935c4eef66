package journal

import (
	"fmt"
	"io"
	"time"
)

// backlogSize is how many of drover's own log entries may wait for a slow
// log: far more than drover writes in any burst.
const backlogSize = 4096

// closeWait bounds how long Close waits for queued entries.
const closeWait = time.Second

// Async is an io.Writer for drover's own log when it is text on stderr
// (dev mode, or --log-format json): each Write is queued and written by
// one goroutine, so a stderr nobody reads (a paused terminal, a pipe into
// a stuck program, a journald stream that stopped) cannot block the event
// loop. Writes that do not fit are dropped and counted, and a line says
// how many once the writer catches up. A write error (EPIPE: the reader is
// gone) loses that line, never the process.
type Async struct {
	w       io.Writer
	backlog *backlog[[]byte]
}

// NewAsync writes to w through a bounded queue.
func NewAsync(w io.Writer) *Async {
	a := &Async{w: w}
	a.backlog = newBacklog(backlogSize, func(p []byte) { w.Write(p) }, func(n int64) {
		fmt.Fprintf(w, "drover: %d of drover's log entries dropped: the log did not keep up\n", n)
	})
	return a
}

// Write queues a copy of p; it never blocks and never fails.
func (a *Async) Write(p []byte) (int, error) {
	a.backlog.put(append([]byte(nil), p...))
	return len(p), nil
}

// Close writes what is queued, waiting at most a second.
func (a *Async) Close() error {
	a.backlog.close(closeWait)
	return nil
}
