package supervisor

// Worker output. Each worker's stdout and stderr are pipes that drover
// reads; every line becomes one log entry for a logSink (journald, or text
// on drover's own stdout and stderr in dev mode).
//
// The contract, in the words the README uses:
//
//   - One entry per line. PRIORITY is 6 (info) for stdout and 3 (err) for
//     stderr; a line that starts with a syslog prefix <0> to <7> gets that
//     priority instead, and the prefix is removed, as journald does for
//     StandardOutput=journal (SyslogLevelPrefix=).
//   - Long lines are kept whole up to 48 KiB (journald's LineMax= default).
//     A longer line is split into 48 KiB entries without losing a byte;
//     every entry but the last of such a line has DROVER_LINE_BREAK=line-max,
//     so the line is the concatenation of an entry with DROVER_LINE_BREAK=line-max
//     and the entries after it, up to one without. The syslog prefix is read
//     from the first piece only; the others inherit its priority.
//   - A last line without a newline is sent when the worker closes its
//     output (it exits), with DROVER_LINE_BREAK=eof.
//   - Bytes are passed as they are: NULs and invalid UTF-8 reach the journal
//     unchanged (journalctl shows such a message as "blob data" unless -a).
//     In dev mode the text is escaped for the terminal instead.
//   - drover reads a worker's output continuously into a queue of up to
//     4 MiB per stream, so a worker never waits on the journal. If the queue
//     is full, drover waits for the log sink to make room, at most 100ms at
//     a time: a fast writer is slowed to the journal's pace, never stopped.
//     If the sink frees nothing for 100ms (journald hung), drover drops
//     whole lines until the queue is half empty, and then logs, in the same
//     stream, at priority 4: "drover: N lines of worker output dropped",
//     with DROVER_DROPPED=N. Nothing is lost while the sink keeps moving.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

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

// workerMeta says whose output an entry is.
type workerMeta struct {
	ID, Pid, Generation int
	// Identifier is the app's SYSLOG_IDENTIFIER: --log-identifier, by
	// default the command's base name.
	Identifier string
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

// logEntry is one line (or piece of a line) of worker output, or drover's
// notice that lines were dropped.
type logEntry struct {
	worker   *workerMeta
	stream   outputStream
	priority int // 0-7
	// message is the line without its newline and syslog prefix. It is
	// valid only during logSink.write: the forwarder reuses the memory.
	message   []byte
	lineBreak lineBreak
	// continued: this entry goes on from the previous one of the stream,
	// which was cut at the line limit.
	continued bool
	// dropped > 0 marks drover's notice that this many lines were lost.
	dropped int
}

// logSink takes worker output entries. write is called from one goroutine
// per stream of every worker at once, so it must be safe for concurrent
// use; it must not keep e.message after it returns. A sink that can fall
// back (journald) handles that itself: an error means the entry is lost.
type logSink interface {
	write(e *logEntry) error
}

// outputLimits bound the memory and the waiting of one stream's forwarder.
type outputLimits struct {
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

func (l outputLimits) orDefaults() outputLimits {
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
func forwardOutput(r io.Reader, stream outputStream, meta *workerMeta, sink logSink, lim outputLimits) forwardStats {
	lim = lim.orDefaults()
	q := newOutputQueue(lim)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		q.fill(r)
	}()
	ls := &lineSplitter{
		sink: sink, lineMax: lim.lineMax,
		entry: logEntry{worker: meta, stream: stream},
	}
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

func newOutputQueue(lim outputLimits) *outputQueue {
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

// lineSplitter turns a stream's bytes into entries.
type lineSplitter struct {
	sink    logSink
	lineMax int
	entry   logEntry // reused for every write; worker and stream set

	buf  []byte // the current line, when it spans reads
	cont bool   // pieces of the current line went out already (line-max)
	prio int    // the current line's priority, once cont
	// skip discards up to the next newline: the rest of a line that lost
	// bytes in a gap, already counted as dropped.
	skip  bool
	stats forwardStats
}

func (ls *lineSplitter) feed(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if ls.skip {
			if i < 0 {
				return
			}
			data = data[i+1:]
			ls.skip = false
			continue
		}
		if i < 0 {
			ls.add(data, false)
			return
		}
		ls.add(data[:i], true)
		data = data[i+1:]
	}
}

// add appends seg to the current line and sends what is complete: pieces
// of lineMax bytes while the line is longer, then the line if complete.
func (ls *lineSplitter) add(seg []byte, complete bool) {
	// Only cut when more than lineMax bytes are known, so that a line of
	// exactly lineMax bytes stays whole, and a cut piece is never the last.
	for len(ls.buf)+len(seg) > ls.lineMax {
		if len(ls.buf) == 0 {
			ls.emit(seg[:ls.lineMax], breakLineMax)
			seg = seg[ls.lineMax:]
			continue
		}
		take := ls.lineMax - len(ls.buf)
		ls.buf = append(ls.buf, seg[:take]...)
		seg = seg[take:]
		ls.emit(ls.buf, breakLineMax)
		ls.buf = ls.buf[:0]
	}
	switch {
	case !complete:
		ls.buf = append(ls.buf, seg...)
	case len(ls.buf) == 0:
		ls.emit(seg, breakNewline)
	default:
		ls.buf = append(ls.buf, seg...)
		ls.emit(ls.buf, breakNewline)
		ls.buf = ls.buf[:0]
	}
}

// flush sends a last line that had no newline.
func (ls *lineSplitter) flush() {
	if len(ls.buf) > 0 && !ls.skip {
		ls.emit(ls.buf, breakEOF)
	}
	ls.buf = ls.buf[:0]
}

// gap accounts for dropped output: every line that lost a byte is dropped
// whole (a line's surviving pieces already sent stay), so what arrives is
// only ever complete lines, and the count is exact.
func (ls *lineSplitter) gap(g outputGap) {
	lost := g.newlines
	if g.last != '\n' {
		lost++ // the line the gap ends in
	}
	if ls.skip {
		lost-- // the line being skipped was counted by the previous gap
	}
	ls.skip = g.last != '\n'
	ls.buf = ls.buf[:0]
	ls.cont = false
	if lost <= 0 {
		return
	}
	ls.stats.dropped += lost
	e := ls.entry
	e.priority = 4 // warning
	e.message = fmt.Appendf(nil, "drover: %d lines of worker output dropped (%d bytes): the log sink did not keep up", lost, g.bytes)
	e.dropped = lost
	ls.write(&e)
}

func (ls *lineSplitter) emit(msg []byte, brk lineBreak) {
	prio := ls.prio
	if !ls.cont {
		prio = ls.entry.stream.defaultPriority()
		if p, rest, ok := syslogPrefix(msg); ok {
			prio, msg = p, rest
		}
		ls.prio = prio
	}
	ls.entry.priority = prio
	ls.entry.message = msg
	ls.entry.lineBreak = brk
	ls.entry.continued = ls.cont
	ls.cont = brk == breakLineMax
	ls.stats.entries++
	ls.write(&ls.entry)
}

func (ls *lineSplitter) write(e *logEntry) {
	if err := ls.sink.write(e); err != nil {
		ls.stats.failed++
		if ls.stats.sinkErr == nil {
			ls.stats.sinkErr = err
		}
	}
}

// syslogPrefix reads a leading "<N>" as journald does for stream lines
// with SyslogLevelPrefix= (syslog_parse_priority without facility): one to
// three digits, value 0 to 7. It returns the priority and the rest.
func syslogPrefix(msg []byte) (prio int, rest []byte, ok bool) {
	if len(msg) < 3 || msg[0] != '<' {
		return 0, msg, false
	}
	v := 0
	for i := 1; i < len(msg) && i <= 4; i++ {
		c := msg[i]
		if c == '>' {
			if i == 1 || v > 7 {
				return 0, msg, false
			}
			return v, msg[i+1:], true
		}
		if c < '0' || c > '9' {
			return 0, msg, false
		}
		v = v*10 + int(c-'0')
	}
	return 0, msg, false
}

// workerOutput captures one worker's stdout and stderr through two pipes
// and forwards them to a logSink. Use: newWorkerOutput before starting the
// process, Stdout and Stderr as its fds 1 and 2, start once it runs (or
// abort if it did not start), wait after it exited, close when drover is
// done with it.
type workerOutput struct {
	// Stdout and Stderr are the write ends, for exec.Cmd; start and abort
	// close drover's copies.
	Stdout, Stderr *os.File
	readers        [2]*os.File
	started        bool
	eof            [2]chan struct{} // closed when a stream hit EOF or an error
	done           chan struct{}    // closed when both streams are forwarded
	stats          [2]forwardStats  // valid once done is closed
}

func newWorkerOutput() (*workerOutput, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("worker stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("worker stderr pipe: %w", err)
	}
	return &workerOutput{
		Stdout: outW, Stderr: errW, readers: [2]*os.File{outR, errR},
		eof:  [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		done: make(chan struct{}),
	}, nil
}

// start forwards the output of the started worker meta describes. It
// closes drover's copies of the write ends first: EOF comes only when
// every holder of a write end has closed it.
func (o *workerOutput) start(meta workerMeta, sink logSink, lim outputLimits) {
	o.Stdout.Close()
	o.Stderr.Close()
	o.started = true
	var wg sync.WaitGroup
	for i, stream := range [2]outputStream{streamStdout, streamStderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &eofReader{r: o.readers[i], eof: o.eof[i]}
			o.stats[i] = forwardOutput(r, stream, &meta, sink, lim)
			o.readers[i].Close()
		}()
	}
	go func() {
		wg.Wait()
		close(o.done)
	}()
}

// abort closes everything of a worker that did not start.
func (o *workerOutput) abort() {
	o.Stdout.Close()
	o.Stderr.Close()
	o.readers[0].Close()
	o.readers[1].Close()
}

// wait waits, after the worker exited, until its output is forwarded to
// the end, so that its last lines are logged before its exit. EOF comes at
// once when the worker was the only holder of the pipes; eofWithin bounds
// the wait for it, for when a process the worker started still holds them
// (forwarding then goes on, and close ends it). flushWithin bounds the
// sink's time to take what was queued. It reports whether all was
// forwarded.
func (o *workerOutput) wait(eofWithin, flushWithin time.Duration) bool {
	timer := time.NewTimer(eofWithin)
	defer timer.Stop()
	for _, c := range o.eof {
		select {
		case <-c:
		case <-timer.C:
			return false
		}
	}
	timer.Reset(flushWithin)
	select {
	case <-o.done:
		return true
	case <-timer.C:
		return false
	}
}

// close stops forwarding, whoever still holds the pipes, and waits until
// the forwarders have handed what they read to the sink.
func (o *workerOutput) close() {
	o.readers[0].Close()
	o.readers[1].Close()
	if o.started {
		<-o.done
	}
}

// eofReader closes eof when reading r fails, EOF included.
type eofReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}
