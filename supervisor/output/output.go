package output

import (
	"errors"
	"io"
	"strconv"
	"time"
)

// maxKeptBuf: a buffer grown by a long line is not kept for the next one.
const maxKeptBuf = 64 << 10

// outputStream is which of a worker's outputs a line came from.
type outputStream uint8

const (
	streamStdout outputStream = iota + 1
	streamStderr
)

func (s outputStream) String() string {
	switch s {
	case streamStdout:
		return "stdout"
	case streamStderr:
		return "stderr"
	}
	return "stream(" + strconv.Itoa(int(s)) + ")"
}

// defaultPriority is the syslog priority of a line without a <N> prefix.
func (s outputStream) defaultPriority() int {
	if s == streamStderr {
		return 3 // err
	}
	return 6 // info
}

// Meta says whose output an entry is.
type Meta struct {
	ID, Pid, Generation int
	// Identifier is the app's SYSLOG_IDENTIFIER: --log-identifier, by
	// default the command's base name.
	Identifier string
	// Count, if set, gives the counters of the lines and dropped lines,
	// counted as they go. (An interface, not a func, keeps Meta
	// comparable.)
	Count Counters
}

// Counter counts; a prometheus.Counter is one.
type Counter interface{ Add(float64) }

// Counters gives the counters of one stream ("stdout", "stderr").
type Counters interface {
	Counters(stream string) (lines, dropped Counter)
}

// counters are the stream's counters, nil if none.
func (m *Meta) counters(stream outputStream) (lines, dropped Counter) {
	if m.Count == nil {
		return nil, nil
	}
	return m.Count.Counters(stream.String())
}

// lineBreak says why an entry ended elsewhere than at a newline. Its
// strings are the values journald uses for its own _LINE_BREAK= field.
type lineBreak uint8

const (
	breakNewline lineBreak = iota // ended at '\n': the normal case, no field
	breakLineMax                  // cut at the line limit; the line goes on in the next entry
	breakEOF                      // the stream ended without a final newline
)

func (b lineBreak) String() string {
	switch b {
	case breakNewline:
		return ""
	case breakLineMax:
		return "line-max"
	case breakEOF:
		return "eof"
	}
	return "break(" + strconv.Itoa(int(b)) + ")"
}

// Entry is one line (or piece of a line) of worker output, or drover's
// notice that lines were dropped.
type Entry struct {
	worker   *Meta
	stream   outputStream
	priority int // 0-7
	// message is the line without its newline and syslog prefix. It is
	// valid only during Sink.write: the forwarder reuses the memory.
	message   []byte
	lineBreak lineBreak
	// continued: this entry goes on from the previous one of the stream,
	// which was cut at the line limit.
	continued bool
	// dropped > 0 marks drover's notice that this many lines were lost.
	dropped int
}

// Sink takes worker output entries. write is called from one goroutine
// per stream of every worker at once, so it must be safe for concurrent
// use; it must not keep e.message after it returns. A sink that can fall
// back (journald) handles that itself: an error means the entry is lost.
type Sink interface {
	write(e *Entry) error
}

// Limits bound the memory and the waiting of one stream's forwarder.
type Limits struct {
	// lineMax is the longest line kept in one entry.
	lineMax int
	// queueBytes bounds what one stream may hold between pipe and sink.
	queueBytes int
	// stallMax is how long the reader waits for the sink to free room
	// before it drops lines; it bounds how long drover can keep a worker's
	// write(2) waiting.
	stallMax time.Duration
}

const (
	defaultLineMax    = 48 << 10 // journald's LineMax= default
	defaultQueueBytes = 4 << 20
	defaultStallMax   = 100 * time.Millisecond

	// readBufSize takes a full pipe (Linux's default capacity) in one read.
	readBufSize = 64 << 10
	// minRoom is how much room the reader waits for before it reads, and
	// how much the writer processes before it gives room back: small
	// enough that a throttled worker moves in small steps, large enough
	// not to cost a wakeup per line.
	minRoom = 4 << 10
	// itemOverhead is charged per queued read on top of its bytes, so that
	// a worker writing one tiny line per write cannot queue millions of
	// them under the byte bound.
	itemOverhead = 64
)

func (l Limits) orDefaults() Limits {
	if l.lineMax <= 0 {
		l.lineMax = defaultLineMax
	}
	if l.queueBytes <= 0 {
		l.queueBytes = defaultQueueBytes
	}
	l.queueBytes = max(l.queueBytes, 2*(minRoom+itemOverhead))
	if l.stallMax <= 0 {
		l.stallMax = defaultStallMax
	}
	return l
}

// forwardStats is what one stream's forwarder did.
type forwardStats struct {
	entries int   // entries written from worker output (pieces count one each)
	dropped int   // lines lost because the sink did not keep up
	failed  int   // entries the sink refused
	sinkErr error // the first refusal
	readErr error // why reading stopped, if not EOF (os.ErrClosed: abandoned)
	// maxWait is the longest the reader waited for the sink to make room:
	// drover's share of a worker's longest write, the rest being the
	// scheduler's.
	maxWait time.Duration
}

// forwardOutput reads r until EOF or an error and writes one entry per line
// to sink. It returns when everything read has been handed to the sink.
// Reading runs in its own goroutine, ahead of the sink by up to
// lim.queueBytes, so that a slow sink does not hold up the worker (see the
// contract at the top of this file).
func forwardOutput(r io.Reader, stream outputStream, meta *Meta, sink Sink, lim Limits) forwardStats {
	lim = lim.orDefaults()
	q := newOutputQueue(lim)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		q.fill(r)
	}()
	ls := &lineSplitter{
		sink: sink, lineMax: lim.lineMax,
		entry: Entry{worker: meta, stream: stream},
	}
	ls.lines, ls.droppedCount = meta.counters(stream)
	for {
		it := q.pop()
		switch {
		case it.end:
			ls.flush()
			<-readerDone
			ls.stats.maxWait = q.maxWait
			if !errors.Is(it.err, io.EOF) {
				ls.stats.readErr = it.err
			}
			return ls.stats
		case it.gap.bytes > 0:
			ls.gap(it.gap)
		default:
			// Give room back as lines go out, not per read, so that a
			// worker throttled by a slow sink waits for one step, not for
			// a whole pipe's worth of lines.
			for data := it.data; len(data) > 0; {
				n := min(len(data), minRoom)
				ls.feed(data[:n])
				data = data[n:]
				q.release(n)
			}
			q.release(itemOverhead)
		}
	}
}
