package output

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// TextSink writes worker output as text: worker stdout to one writer,
// worker stderr (and drop notices) to the other, one line per entry,
// prefixed "[w<id> <pid>] " ("[w<id> <pid>]+ " for the second and later
// pieces of a line cut at the line limit).
//
// Every line is one Write call made under one lock, so lines of different
// workers never interleave mid-line. An *os.File also holds a lock for a
// whole Write, so drover's own log, written to the same file one Write per
// entry by logrus, does not cut into them either.
type TextSink struct {
	stdout, stderr io.Writer
	// levelPrefix starts each line with its syslog prefix <N>: for a writer
	// that is a journald stream (SyslogLevelPrefix= is on by default), which
	// then keeps the entry's priority.
	levelPrefix bool

	mu     sync.Mutex
	buf    []byte
	recent recent
}

// NewTextSink writes worker stdout to stdout, worker stderr and drop
// notices to stderr.
func NewTextSink(stdout, stderr io.Writer) *TextSink {
	return &TextSink{stdout: stdout, stderr: stderr}
}

func (t *TextSink) write(e *Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf[:0]
	if t.levelPrefix {
		b = append(b, '<', byte('0'+e.priority&7), '>')
	}
	b = append(b, "[w"...)
	b = strconv.AppendInt(b, int64(e.worker.ID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.worker.Pid), 10)
	b = append(b, ']')
	if e.continued {
		b = append(b, '+')
	}
	b = append(b, ' ')
	b = AppendEscaped(b, e.message)
	b = append(b, '\n')
	w := t.stdout
	if e.stream == streamStderr || e.dropped > 0 {
		w = t.stderr
	}
	_, err := w.Write(b)
	line := b[:len(b)-1]
	if t.levelPrefix {
		line = line[3:]
	}
	t.recent.add(time.Now(), string(line))
	if cap(b) <= maxKeptBuf {
		t.buf = b
	}
	if err != nil {
		return fmt.Errorf("write worker %d %s: %w", e.worker.ID, e.stream, err)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendEscaped appends msg made safe for a terminal or a text log:
// printable text as it is, tab and ESC kept (so that a worker's colours
// still work in dev mode), other control characters and bytes that are not
// UTF-8 as \xNN, C1 control characters as \u00NN. It is for reading, not
// reversible: a backslash is not escaped.
func AppendEscaped(dst, msg []byte) []byte { return appendEscaped(dst, msg, true) }

// Sanitize is AppendEscaped without exceptions, for text drover shows of a
// worker outside its log (drover status): ESC escaped too, since there it
// could clear the operator's screen or set the terminal's title rather than
// colour a line, and tab too, which would break the table's columns.
func Sanitize(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return string(appendEscaped(make([]byte, 0, len(s)+8), []byte(s), false))
		}
	}
	return s // plain ASCII: nothing to escape
}

// appendEscaped is AppendEscaped, or Sanitize without keepColours.
func appendEscaped(dst, msg []byte, keepColours bool) []byte {
	for i := 0; i < len(msg); {
		c := msg[i]
		if c < utf8.RuneSelf {
			if (c >= 0x20 && c != 0x7f) || (keepColours && (c == '\t' || c == 0x1b)) {
				dst = append(dst, c)
			} else {
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(msg[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case r < 0xa0:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		default:
			dst = append(dst, msg[i:i+size]...)
		}
		i += size
	}
	return dst
}
