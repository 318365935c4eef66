package output

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// outputGap describes output the reader dropped.
type outputGap struct {
	bytes    int
	newlines int
	last     byte // the last byte dropped
}

func (g *outputGap) add(p []byte) {
	g.bytes += len(p)
	g.newlines += bytes.Count(p, []byte{'\n'})
	g.last = p[len(p)-1]
}

type queueItem struct {
	data []byte
	gap  outputGap // bytes > 0: output dropped here
	end  bool
	err  error // with end: why reading stopped
}

// outputQueue holds one stream's output between the reader (the pipe) and
// the writer (the sink), bounded by bytes.
type outputQueue struct {
	max      int
	stallMax time.Duration
	ready    chan struct{} // an item was queued (capacity 1)
	freed    chan struct{} // the writer gave room back (capacity 1)

	mu       sync.Mutex
	items    []queueItem
	bytes    int       // charged for the queued data
	dropping bool      // the sink stalled: drop until the queue is half empty
	gap      outputGap // dropped since the last queued item
	maxWait  time.Duration
}

func newOutputQueue(lim Limits) *outputQueue {
	return &outputQueue{
		max: lim.queueBytes, stallMax: lim.stallMax,
		ready: make(chan struct{}, 1), freed: make(chan struct{}, 1),
	}
}

// notifyOne wakes the waiter on c without blocking; one pending wakeup is
// enough, since the waiter looks at the queue's state after waking.
func notifyOne(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// fill reads r into the queue until an error.
func (q *outputQueue) fill(r io.Reader) {
	buf := make([]byte, readBufSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		room := q.room(timer)
		var n int
		var err error
		if room == 0 {
			// Keep reading while dropping: the worker must not block.
			n, err = r.Read(buf)
			if n > 0 {
				q.drop(buf[:n])
			}
		} else {
			n, err = r.Read(buf[:min(room, len(buf))])
			if n > 0 {
				q.push(buf[:n])
			}
		}
		if err != nil {
			q.finish(err)
			return
		}
	}
}

// room waits until the queue has room for a read and returns how much, or
// 0 when the reader must drop what it reads: the sink freed nothing for
// stallMax, and the queue has not yet drained to half since.
func (q *outputQueue) room(timer *time.Timer) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropping {
		if q.bytes > q.max/2 {
			return 0
		}
		q.dropping = false
	}
	if q.max-q.bytes < minRoom+itemOverhead {
		start := time.Now()
		defer func() { q.maxWait = max(q.maxWait, time.Since(start)) }()
	}
	for q.max-q.bytes < minRoom+itemOverhead {
		q.mu.Unlock()
		timer.Reset(q.stallMax)
		stalled := false
		select {
		case <-q.freed:
		case <-timer.C:
			stalled = true
		}
		timer.Stop()
		q.mu.Lock()
		if stalled && q.max-q.bytes < minRoom+itemOverhead {
			q.dropping = true
			return 0
		}
	}
	return q.max - q.bytes - itemOverhead
}

func (q *outputQueue) push(p []byte) {
	q.mu.Lock()
	if q.gap.bytes > 0 {
		q.items = append(q.items, queueItem{gap: q.gap})
		q.gap = outputGap{}
	}
	q.items = append(q.items, queueItem{data: bytes.Clone(p)})
	q.bytes += len(p) + itemOverhead
	q.mu.Unlock()
	notifyOne(q.ready)
}

func (q *outputQueue) drop(p []byte) {
	q.mu.Lock()
	q.gap.add(p)
	q.mu.Unlock()
}

func (q *outputQueue) finish(err error) {
	q.mu.Lock()
	if q.gap.bytes > 0 {
		q.items = append(q.items, queueItem{gap: q.gap})
		q.gap = outputGap{}
	}
	q.items = append(q.items, queueItem{end: true, err: err})
	q.mu.Unlock()
	notifyOne(q.ready)
}

// pop waits for the next item.
func (q *outputQueue) pop() queueItem {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = queueItem{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return it
		}
		q.mu.Unlock()
		<-q.ready
	}
}

func (q *outputQueue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.mu.Unlock()
	notifyOne(q.freed)
}
