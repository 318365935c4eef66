package output

import (
	"io"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/journal"
)

// JournalSink sends worker output to journald, one entry per line, with
// the app's SYSLOG_IDENTIFIER and WORKER_ID, WORKER_PID, GENERATION,
// DROVER_STREAM (and DROVER_LINE_BREAK, DROVER_DROPPED where they apply).
//
// When journald refuses an entry or takes none within the send timeout,
// that entry and all output for the retry period go to the fallback sink
// instead (drover's stderr), and drover logs it once; the first entry after
// that tries journald again, and drover logs once more when journald takes
// output again (journal.Link). So nothing is lost and, while journald stays
// away, one line says so.
type JournalSink struct {
	fallback Sink
	log      logrus.FieldLogger
	link     *journal.Link
}

// NewJournalSink sends worker output to journald, falling back to text on
// stderr (with <N> prefixes, so that a stderr that is a journald stream
// keeps the priorities).
func NewJournalSink(log logrus.FieldLogger, stderr io.Writer) *JournalSink {
	return newJournalSink(log, stderr, journal.NewLink(journal.SocketPath, journal.SendTimeout, journal.RetryAfter))
}

func newJournalSink(log logrus.FieldLogger, stderr io.Writer, link *journal.Link) *JournalSink {
	fallback := NewTextSink(stderr, stderr)
	fallback.levelPrefix = true
	return &JournalSink{fallback: fallback, log: log, link: link}
}

func (s *JournalSink) write(e *Entry) error {
	sent, change, err := s.link.Send(func(rec []byte) []byte { return record(rec, e) })
	// Logged after Send returned: drover's log may itself go to journald.
	switch change {
	case journal.Recovered:
		s.log.Info("journald takes worker output again")
	case journal.Failed:
		s.log.WithError(err).Warnf("journald does not take worker output: writing it to drover's stderr instead, and trying journald again every %v", s.link.RetryAfter())
	}
	if !sent {
		return s.fallback.write(e)
	}
	return nil
}

func record(rec []byte, e *Entry) []byte {
	rec = journal.AppendInt(rec, "PRIORITY", e.priority)
	rec = journal.AppendField(rec, "MESSAGE", e.message)
	if e.worker.Identifier != "" {
		rec = journal.AppendString(rec, "SYSLOG_IDENTIFIER", e.worker.Identifier)
	}
	rec = journal.AppendInt(rec, "WORKER_ID", e.worker.ID)
	rec = journal.AppendInt(rec, "WORKER_PID", e.worker.Pid)
	rec = journal.AppendInt(rec, "GENERATION", e.worker.Generation)
	rec = journal.AppendString(rec, "DROVER_STREAM", e.stream.String())
	if e.lineBreak != breakNewline {
		rec = journal.AppendString(rec, "DROVER_LINE_BREAK", e.lineBreak.String())
	}
	if e.dropped > 0 {
		rec = journal.AppendInt(rec, "DROVER_DROPPED", e.dropped)
	}
	return rec
}

// Close ends the connection to journald.
func (s *JournalSink) Close() { s.link.Close() }
