package output

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture captures one worker's stdout and stderr through two pipes
// and forwards them to a Sink. Use: NewCapture before starting the
// process, Stdout and Stderr as its fds 1 and 2, start once it runs (or
// abort if it did not start), wait after it exited, close when drover is
// done with it.
type Capture struct {
	// Stdout and Stderr are the write ends, for exec.Cmd; start and abort
	// close drover's copies.
	Stdout, Stderr *os.File
	readers        [2]*os.File
	started        bool
	eof            [2]chan struct{} // closed when a stream hit EOF or an error
	done           chan struct{}    // closed when both streams are forwarded
	stats          [2]forwardStats  // valid once done is closed
}

func NewCapture() (*Capture, error) {
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
	return &Capture{
		Stdout: outW, Stderr: errW, readers: [2]*os.File{outR, errR},
		eof:  [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		done: make(chan struct{}),
	}, nil
}

// Start forwards the output of the started worker meta describes. It
// closes drover's copies of the write ends first: EOF comes only when
// every holder of a write end has closed it.
func (o *Capture) Start(meta Meta, sink Sink, lim Limits) {
	o.Stdout.Close()
	o.Stderr.Close()
	o.forward(meta, sink, lim)
}

// forward reads each stream until its end; a nil reader is a stream that
// ended before a handover (Resume).
func (o *Capture) forward(meta Meta, sink Sink, lim Limits) {
	o.started = true
	var wg sync.WaitGroup
	for i, stream := range [2]outputStream{streamStdout, streamStderr} {
		if o.readers[i] == nil {
			close(o.eof[i])
			continue
		}
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

// Done is closed once both streams are forwarded to their end.
func (o *Capture) Done() <-chan struct{} { return o.done }

// Abort closes everything of a worker that did not start.
func (o *Capture) Abort() {
	o.Stdout.Close()
	o.Stderr.Close()
	o.readers[0].Close()
	o.readers[1].Close()
}

// Wait waits, after the worker exited, until its output is forwarded to
// the end, so that its last lines are logged before its exit. EOF comes at
// once when the worker was the only holder of the pipes; eofWithin bounds
// the wait for it, for when a process the worker started still holds them
// (forwarding then goes on, and close ends it). flushWithin bounds the
// sink's time to take what was queued. It reports whether all was
// forwarded.
func (o *Capture) Wait(eofWithin, flushWithin time.Duration) bool {
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

// Close stops forwarding, whoever still holds the pipes, and waits until
// the forwarders have handed what they read to the sink.
func (o *Capture) Close() {
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

// Detach stops forwarding for a handover across exec (drover upgrade):
// it hands back a duplicate of each pipe's read end that has not reached
// EOF (nil for one that has) and returns once everything read so far is
// with the sink. What the worker writes meanwhile waits in the pipe for
// the next image; a line cut by the handover is sent in two entries.
func (o *Capture) Detach(flushWithin time.Duration) ([2]*os.File, error) {
	var kept [2]*os.File
	for i, r := range o.readers {
		select {
		case <-o.eof[i]:
			continue
		default:
		}
		fd, err := dupFD(r)
		if err != nil {
			for _, f := range kept {
				if f != nil {
					f.Close()
				}
			}
			return [2]*os.File{}, fmt.Errorf("hand over worker output: %w", err)
		}
		kept[i] = os.NewFile(uintptr(fd), r.Name())
	}
	for i, r := range o.readers {
		if kept[i] != nil {
			if err := r.SetReadDeadline(time.Now()); err != nil {
				return kept, fmt.Errorf("hand over worker output: stop reading: %w", err)
			}
		}
	}
	timer := time.NewTimer(flushWithin)
	defer timer.Stop()
	select {
	case <-o.done:
	case <-timer.C:
	}
	return kept, nil
}

// dupFD duplicates f's descriptor without the close-on-exec flag, so it
// survives exec, and without putting f in blocking mode (as Fd would).
func dupFD(f *os.File) (int, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// Resume forwards the pipes a Capture of an earlier drover image
// detached (nil: that stream had ended).
func Resume(readers [2]*os.File, meta Meta, sink Sink, lim Limits) *Capture {
	o := &Capture{
		readers: readers,
		eof:     [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		done:    make(chan struct{}),
	}
	o.forward(meta, sink, lim)
	return o
}
