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
type Hook struct {
	fallback io.Writer
	text     logrus.Formatter
	link     *Link
}

// NewHook returns a hook that sends entries to journald; fallback
// (drover's stderr) gets them when journald does not take them.
func NewHook(fallback io.Writer) *Hook {
	return newHook(SocketPath, fallback)
}

func newHook(path string, fallback io.Writer) *Hook {
	return &Hook{
		fallback: fallback,
		text:     &logrus.TextFormatter{DisableTimestamp: true, DisableColors: true},
		link:     NewLink(path, SendTimeout, RetryAfter),
	}
}

// Levels is every level: the logger's own level decides what is logged.
func (h *Hook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire sends one entry, in the goroutine that logs (logrus does not
// serialize hooks; the Link does).
func (h *Hook) Fire(e *logrus.Entry) error {
	sent, change, err := h.link.Send(func(rec []byte) []byte { return appendLogrusRecord(rec, e) })
	if sent {
		return nil
	}
	if change == Failed {
		fmt.Fprintf(h.fallback, "<4>drover: journald does not take drover's log (%v): writing it here instead, and trying journald again every %v\n", err, h.link.RetryAfter())
	}
	line, err := h.text.Format(e)
	if err != nil {
		return fmt.Errorf("format log entry for stderr: %w", err)
	}
	prefix := []byte{'<', byte('0' + logrusPriority(e.Level)), '>'}
	if _, err := h.fallback.Write(append(prefix, line...)); err != nil {
		return fmt.Errorf("write log entry to stderr: %w", err)
	}
	return nil
}

// Close ends the connection to journald.
func (h *Hook) Close() error {
	h.link.Close()
	return nil
}
