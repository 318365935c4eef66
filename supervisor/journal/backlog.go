package journal

import (
	"sync"
	"sync/atomic"
	"time"
)

// backlog is a bounded queue with one goroutine that handles its items:
// what puts an item never waits, whatever the handler is stuck on (a
// journald that stopped reading, a stderr pipe nobody drains). An item
// that does not fit is dropped and counted; the handler is told the count
// once it has caught up, so the loss is reported where the log goes.
type backlog[T any] struct {
	items   chan T
	dropped atomic.Int64
	handle  func(T)
	report  func(dropped int64)
	done    chan struct{}
	once    sync.Once
}

func newBacklog[T any](size int, handle func(T), report func(dropped int64)) *backlog[T] {
	b := &backlog[T]{items: make(chan T, size), handle: handle, report: report, done: make(chan struct{})}
	go b.run()
	return b
}

func (b *backlog[T]) run() {
	defer close(b.done)
	for item := range b.items {
		b.handle(item)
		if len(b.items) == 0 {
			if n := b.dropped.Swap(0); n > 0 {
				b.report(n)
			}
		}
	}
}

// put queues item, or drops it when the queue is full.
func (b *backlog[T]) put(item T) {
	select {
	case b.items <- item:
	default:
		b.dropped.Add(1)
	}
}

// close stops taking items and waits at most wait for the queued ones to
// be handled: drover's exit never hangs on a stuck log.
func (b *backlog[T]) close(wait time.Duration) {
	b.once.Do(func() { close(b.items) })
	select {
	case <-b.done:
	case <-time.After(wait):
	}
}
