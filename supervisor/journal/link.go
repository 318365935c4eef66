package journal

import (
	"sync"
	"time"
)

// maxKeptBuf: an encoding buffer grown by a big entry is not kept for the
// next one.
const maxKeptBuf = 64 << 10

// Change says how a Send moved a Link between journald and the fallback.
type Change int

const (
	// Unchanged: the entry went where the one before it went.
	Unchanged Change = iota
	// Failed: journald did not take the entry; it and what follows for the
	// retry period belong on the fallback.
	Failed
	// Recovered: journald took an entry again after a failure.
	Recovered
)

// Link is a Conn with the rule both of drover's journald writers follow
// (worker output and drover's own log): when journald refuses an entry or
// takes none within the send timeout, that entry and everything for the
// next retry period go to the writer's fallback instead, and the first
// entry after it tries journald again. The owner says so on each Change, so
// that while journald stays away one line tells, not one per entry.
// Safe for concurrent use.
type Link struct {
	mu         sync.Mutex
	conn       *Conn
	retryAfter time.Duration
	rec        []byte
	failing    bool
	retryAt    time.Time
}

// NewLink returns a Link to the journald socket at path.
func NewLink(path string, timeout, retryAfter time.Duration) *Link {
	return &Link{conn: NewConn(path, timeout), retryAfter: retryAfter}
}

// Send encodes an entry with encode and sends it to journald, unless the
// link is failing and the retry is not due. sent says whether journald took
// it: if not, the caller writes the entry to its fallback. err is why
// journald did not take it, when it was tried.
func (l *Link) Send(encode func(rec []byte) []byte) (sent bool, change Change, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing && time.Now().Before(l.retryAt) {
		return false, Unchanged, nil
	}
	l.rec = encode(l.rec[:0])
	err = l.conn.Send(l.rec)
	if cap(l.rec) > maxKeptBuf {
		l.rec = nil
	}
	wasFailing := l.failing
	l.failing = err != nil
	switch {
	case err != nil:
		l.retryAt = time.Now().Add(l.retryAfter)
		if wasFailing {
			return false, Unchanged, err
		}
		return false, Failed, err
	case wasFailing:
		return true, Recovered, nil
	}
	return true, Unchanged, nil
}

// RetryAfter is how long output stays on the fallback after a failure.
func (l *Link) RetryAfter() time.Duration { return l.retryAfter }

// SetTimeout changes the send timeout.
func (l *Link) SetTimeout(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn.timeout = d
}

// RetryNow makes the next Send try journald whatever the retry period says.
func (l *Link) RetryNow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAt = time.Time{}
}

// Close ends the connection to journald.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn.Close()
}
