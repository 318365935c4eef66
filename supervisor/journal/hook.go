package journal

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"
)

// Hook sends drover's own log entries to journald: SYSLOG_IDENTIFIER
// drover, PRIORITY from the level, MESSAGE the message followed by the
// fields as key=value (so that plain journalctl shows them), and every
// field as a journal field of its own (worker as WORKER_ID, pid as
// WORKER_PID, generation as GENERATION, exit as EXIT_STATUS, the others
// upper-cased: reason as REASON).
//
// Add it with log.AddHook and discard the logger's own output
// (log.SetOutput(io.Discard)). When journald refuses an entry or takes none
// within a second, the hook writes it to the fallback writer as text
// (with a <N> priority prefix, for a stderr that is a journald stream),
// says so there once, and tries journald again after RetryAfter.
//
// Fire never waits for journald or the fallback: entries are encoded at
// once and sent by one goroutine through a bounded queue, so a journald
// that stopped reading (and a stderr that is its stream) cannot block the
// event loop. Entries that do not fit are dropped, and one entry says how
// many once the queue drains.
type Hook struct {
	fallback io.Writer
	link     *Link
	backlog  *backlog[hookEntry]
}

// hookEntry is one log entry, encoded both ways at Fire.
type hookEntry struct {
	rec  []byte // the journal entry
	text []byte // the fallback line, with its <N> prefix
}

// NewHook returns a hook that sends entries to journald; fallback
// (drover's stderr) gets them when journald does not take them.
func NewHook(fallback io.Writer) *Hook {
	return newHook(SocketPath, fallback)
}

func newHook(path string, fallback io.Writer) *Hook {
	h := &Hook{fallback: fallback, link: NewLink(path, SendTimeout, RetryAfter)}
	h.backlog = newBacklog(backlogSize, h.send, h.reportDropped)
	return h
}

var textFormat = &logrus.TextFormatter{DisableTimestamp: true, DisableColors: true}

// Levels is every level: the logger's own level decides what is logged.
func (h *Hook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire queues one entry; it never blocks.
func (h *Hook) Fire(e *logrus.Entry) error {
	line, err := textFormat.Format(e)
	if err != nil {
		return fmt.Errorf("format log entry: %w", err)
	}
	text := append([]byte{'<', byte('0' + logrusPriority(e.Level)), '>'}, line...)
	h.backlog.put(hookEntry{rec: appendLogrusRecord(nil, e), text: text})
	return nil
}

// send runs in the backlog's goroutine.
func (h *Hook) send(e hookEntry) {
	sent, change, err := h.link.Send(func(rec []byte) []byte { return append(rec, e.rec...) })
	if sent {
		return
	}
	if change == Failed {
		fmt.Fprintf(h.fallback, "<4>drover: journald does not take drover's log (%v): writing it here instead, and trying journald again every %v\n", err, h.link.RetryAfter())
	}
	// An error here (EPIPE: stderr is gone too) loses the entry, not drover.
	h.fallback.Write(e.text)
}

func (h *Hook) reportDropped(n int64) {
	msg := fmt.Sprintf("%d of drover's log entries dropped: journald did not keep up", n)
	rec := AppendInt(nil, "PRIORITY", 4)
	rec = AppendString(rec, "MESSAGE", msg)
	rec = AppendString(rec, "SYSLOG_IDENTIFIER", "drover")
	rec = AppendInt(rec, "DROVER_DROPPED", int(n))
	h.send(hookEntry{rec: rec, text: []byte("<4>drover: " + msg + "\n")})
}

// Close sends what is queued, waiting at most a second, and ends the
// connection to journald.
func (h *Hook) Close() error {
	h.backlog.close(closeWait)
	h.link.Close()
	return nil
}
