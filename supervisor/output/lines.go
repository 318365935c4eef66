package output

import (
	"bytes"
	"fmt"
)

// lineSplitter turns a stream's bytes into entries.
type lineSplitter struct {
	sink    Sink
	lineMax int
	entry   Entry // reused for every write; worker and stream set

	buf  []byte // the current line, when it spans reads
	cont bool   // pieces of the current line went out already (line-max)
	prio int    // the current line's priority, once cont
	// skip discards up to the next newline: the rest of a line that lost
	// bytes in a gap, already counted as dropped.
	skip  bool
	stats forwardStats
	// lines and droppedCount are the metrics' counters (Meta.Count), or
	// nil.
	lines, droppedCount Counter
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
	if ls.droppedCount != nil {
		ls.droppedCount.Add(float64(lost))
	}
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
	if ls.lines != nil && !ls.cont {
		ls.lines.Add(1)
	}
	ls.write(&ls.entry)
}

func (ls *lineSplitter) write(e *Entry) {
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
