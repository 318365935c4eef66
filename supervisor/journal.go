package supervisor

// journald's native protocol: worker output (journalSink) and drover's own
// log (JournalHook) as structured entries.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	journalSocketPath = "/run/systemd/journal/socket"
	// journalSendTimeout is how long one entry may wait for journald to
	// take it before drover calls journald slow and falls back to stderr.
	// It is long enough for journald's usual pauses (rotating or syncing a
	// file) and short next to the time a worker needs to fill a 4 MiB
	// queue at any realistic rate, so the fallback comes before drops.
	journalSendTimeout = time.Second
	// journalRetryAfter is how long output stays on stderr after journald
	// failed, before the next entry tries journald again.
	journalRetryAfter = 10 * time.Second
	// journalSendBuffer, as libsystemd asks for: many entries in flight.
	journalSendBuffer = 8 << 20
)

// UseJournal reports whether drover's stderr is connected to journald
// (JOURNAL_STREAM names it), so drover should log to journald natively.
func UseJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// journalConn sends entries to journald's native socket.
//
// go-systemd's journal.Send implements the same protocol, and
// journal.StderrIsJournalStream is used above, but Send is wrong for this
// job in three ways: it has no deadline, so a journald that stops reading
// blocks the sender for good (no fallback, and a goroutine that cannot be
// ended); its socket path is fixed at build time, so a test cannot put a
// fake journald in its place; and it prints to os.Stderr by itself. The
// protocol is small and stable (systemd.io/JOURNAL_NATIVE_PROTOCOL), so it
// is written here. Not safe for concurrent use: owners hold a lock.
type journalConn struct {
	path    string
	timeout time.Duration
	conn    *net.UnixConn
}

func (c *journalConn) dial() error {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: c.path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("connect to journald at %s: %w", c.path, err)
	}
	// A connected socket makes the kernel wake the sender when journald
	// reads, instead of leaving it to the deadline, when journald's queue
	// is full. A bigger buffer is best effort: SO_SNDBUFFORCE needs root.
	conn.SetWriteBuffer(journalSendBuffer)
	if raw, err := conn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, journalSendBuffer)
		})
	}
	c.conn = conn
	return nil
}

// send sends one encoded entry, waiting at most c.timeout.
func (c *journalConn) send(rec []byte) error {
	redialed := false
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return err
		}
		redialed = true
	}
	for {
		c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
		_, err := c.conn.Write(rec)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS):
			return c.sendMemfd(rec)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("journald at %s took no entry within %v", c.path, c.timeout)
		}
		// The socket may have been replaced (journald restarted outside
		// socket activation): connect again, once.
		c.close()
		if redialed {
			return fmt.Errorf("send to journald at %s: %w", c.path, err)
		}
		if err := c.dial(); err != nil {
			return err
		}
		redialed = true
	}
}

// sendMemfd sends an entry too big for a datagram as journald takes it: a
// sealed memfd passed with SCM_RIGHTS in an empty datagram.
func (c *journalConn) sendMemfd(rec []byte) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("journal entry of %d bytes: memfd: %w", len(rec), err)
	}
	f := os.NewFile(uintptr(fd), "memfd:journal-entry")
	defer f.Close()
	if _, err := f.Write(rec); err != nil {
		return fmt.Errorf("journal entry of %d bytes: write memfd: %w", len(rec), err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("journal entry of %d bytes: seal memfd: %w", len(rec), err)
	}
	// net.UnixConn refuses WriteMsgUnix on a connected datagram socket, so
	// sendmsg(2) goes through the raw connection, which keeps the deadline.
	raw, err := c.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("journal entry of %d bytes: %w", len(rec), err)
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	var sendErr error
	err = raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), nil, unix.UnixRights(int(f.Fd())), nil, 0)
		return sendErr != unix.EAGAIN
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return fmt.Errorf("send journal entry of %d bytes to %s: %w", len(rec), c.path, err)
	}
	return nil
}

func (c *journalConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// appendJournalField encodes one field. name must be valid (A-Z, 0-9, _,
// not starting with _ or a digit). A value with a newline takes the
// binary-safe form: name, newline, 64-bit little-endian length, value,
// newline. Any other bytes, NUL included, are fine in the plain form.
func appendJournalField(rec []byte, name string, value []byte) []byte {
	rec = append(rec, name...)
	if !slices.Contains(value, '\n') {
		rec = append(rec, '=')
		rec = append(rec, value...)
		return append(rec, '\n')
	}
	rec = append(rec, '\n')
	rec = binary.LittleEndian.AppendUint64(rec, uint64(len(value)))
	rec = append(rec, value...)
	return append(rec, '\n')
}

func appendJournalString(rec []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		rec = append(rec, name...)
		rec = append(rec, '=')
		rec = append(rec, value...)
		return append(rec, '\n')
	}
	return appendJournalField(rec, name, []byte(value))
}

func appendJournalInt(rec []byte, name string, v int) []byte {
	rec = append(rec, name...)
	rec = append(rec, '=')
	rec = strconv.AppendInt(rec, int64(v), 10)
	return append(rec, '\n')
}

// journalSink sends worker output to journald, one entry per line, with
// the app's SYSLOG_IDENTIFIER and WORKER_ID, WORKER_PID, GENERATION,
// DROVER_STREAM (and DROVER_LINE_BREAK, DROVER_DROPPED where they apply).
//
// When journald refuses an entry or takes none within the send timeout,
// that entry and all output for the next journalRetryAfter go to the
// fallback sink instead (drover's stderr), and drover logs it once; the
// first entry after that tries journald again, and drover logs once more
// when journald takes output again. So nothing is lost and, while journald
// stays away, one line says so.
type journalSink struct {
	fallback   logSink
	log        logrus.FieldLogger
	retryAfter time.Duration

	mu      sync.Mutex
	conn    journalConn
	rec     []byte
	failing bool      // output goes to fallback
	retryAt time.Time // when failing: when to try journald again
}

// newJournalSink sends worker output to journald, falling back to text on
// stderr (with <N> prefixes, so that a stderr that is a journald stream
// keeps the priorities).
func newJournalSink(log logrus.FieldLogger, stderr io.Writer) *journalSink {
	fallback := newTextSink(stderr, stderr)
	fallback.levelPrefix = true
	return &journalSink{
		fallback: fallback, log: log, retryAfter: journalRetryAfter,
		conn: journalConn{path: journalSocketPath, timeout: journalSendTimeout},
	}
}

func (s *journalSink) write(e *logEntry) error {
	s.mu.Lock()
	if s.failing && time.Now().Before(s.retryAt) {
		s.mu.Unlock()
		return s.fallback.write(e)
	}
	s.rec = s.record(s.rec[:0], e)
	err := s.conn.send(s.rec)
	if cap(s.rec) > maxKeptBuf {
		s.rec = nil
	}
	wasFailing := s.failing
	s.failing = err != nil
	if err != nil {
		s.retryAt = time.Now().Add(s.retryAfter)
	}
	s.mu.Unlock()

	// Log outside the lock: drover's log may itself go to journald.
	switch {
	case err == nil && wasFailing:
		s.log.Info("journald takes worker output again")
	case err != nil && !wasFailing:
		s.log.WithError(err).Warnf("journald does not take worker output: writing it to drover's stderr instead, and trying journald again every %v", s.retryAfter)
	}
	if err != nil {
		return s.fallback.write(e)
	}
	return nil
}

func (s *journalSink) record(rec []byte, e *logEntry) []byte {
	rec = appendJournalInt(rec, "PRIORITY", e.priority)
	rec = appendJournalField(rec, "MESSAGE", e.message)
	if e.worker.Identifier != "" {
		rec = appendJournalString(rec, "SYSLOG_IDENTIFIER", e.worker.Identifier)
	}
	rec = appendJournalInt(rec, "WORKER_ID", e.worker.ID)
	rec = appendJournalInt(rec, "WORKER_PID", e.worker.Pid)
	rec = appendJournalInt(rec, "GENERATION", e.worker.Generation)
	rec = appendJournalString(rec, "DROVER_STREAM", e.stream.String())
	if e.lineBreak != breakNewline {
		rec = appendJournalString(rec, "DROVER_LINE_BREAK", e.lineBreak.String())
	}
	if e.dropped > 0 {
		rec = appendJournalInt(rec, "DROVER_DROPPED", e.dropped)
	}
	return rec
}

// close ends the connection to journald.
func (s *journalSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.close()
}

// JournalHook sends drover's own log entries to journald: SYSLOG_IDENTIFIER
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
// says so there once, and tries journald again after 10s.
type JournalHook struct {
	fallback   io.Writer
	text       logrus.Formatter
	retryAfter time.Duration

	mu      sync.Mutex
	conn    journalConn
	rec     []byte
	failing bool
	retryAt time.Time
}

// NewJournalHook returns a hook that sends entries to journald; fallback
// (drover's stderr) gets them when journald does not take them.
func NewJournalHook(fallback io.Writer) *JournalHook {
	return newJournalHook(journalSocketPath, fallback)
}

func newJournalHook(path string, fallback io.Writer) *JournalHook {
	return &JournalHook{
		fallback:   fallback,
		text:       &logrus.TextFormatter{DisableTimestamp: true, DisableColors: true},
		retryAfter: journalRetryAfter,
		conn:       journalConn{path: path, timeout: journalSendTimeout},
	}
}

// Levels is every level: the logger's own level decides what is logged.
func (h *JournalHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire sends one entry. It runs in the goroutine that logs, under the
// hook's lock (logrus does not serialize hooks).
func (h *JournalHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing || !time.Now().Before(h.retryAt) {
		h.rec = appendLogrusRecord(h.rec[:0], e)
		err := h.conn.send(h.rec)
		if cap(h.rec) > maxKeptBuf {
			h.rec = nil
		}
		if err == nil {
			h.failing = false
			return nil
		}
		if !h.failing {
			fmt.Fprintf(h.fallback, "<4>drover: journald does not take drover's log (%v): writing it here instead, and trying journald again every %v\n", err, h.retryAfter)
		}
		h.failing = true
		h.retryAt = time.Now().Add(h.retryAfter)
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
func (h *JournalHook) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn.close()
	return nil
}

// logrusPriority maps a logrus level to a syslog priority.
func logrusPriority(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return 2 // crit
	case logrus.ErrorLevel:
		return 3 // err
	case logrus.WarnLevel:
		return 4 // warning
	case logrus.InfoLevel:
		return 6 // info
	case logrus.DebugLevel, logrus.TraceLevel:
		return 7 // debug
	}
	return 6
}

// appendLogrusRecord encodes a logrus entry as a journal entry.
func appendLogrusRecord(rec []byte, e *logrus.Entry) []byte {
	keys := slices.Sorted(maps.Keys(e.Data))
	values := make([]string, len(keys))
	msg := []byte(e.Message)
	for i, k := range keys {
		values[i] = logValue(e.Data[k])
		msg = append(msg, ' ')
		msg = append(msg, k...)
		msg = append(msg, '=')
		msg = appendLogfmtValue(msg, values[i])
	}
	rec = appendJournalInt(rec, "PRIORITY", logrusPriority(e.Level))
	rec = appendJournalField(rec, "MESSAGE", msg)
	rec = appendJournalString(rec, "SYSLOG_IDENTIFIER", "drover")
	for i, k := range keys {
		rec = appendJournalString(rec, journalFieldName(k), values[i])
	}
	if e.Caller != nil {
		rec = appendJournalString(rec, "CODE_FILE", e.Caller.File)
		rec = appendJournalInt(rec, "CODE_LINE", e.Caller.Line)
		rec = appendJournalString(rec, "CODE_FUNC", e.Caller.Function)
	}
	return rec
}

func logValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	}
	return fmt.Sprint(v)
}

// appendLogfmtValue quotes a value the way logrus's text format does: when
// it is empty or holds anything but letters, digits and -._/@^+:.
func appendLogfmtValue(dst []byte, v string) []byte {
	plain := v != ""
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._/@^+:", c)) {
			plain = false
			break
		}
	}
	if plain {
		return append(dst, v...)
	}
	return strconv.AppendQuote(dst, v)
}

// journalFieldName turns a logrus field key into a journal field name:
// drover's keys by name, others upper-cased with what journald does not
// accept (anything but A-Z, 0-9 and _, a leading _ or digit, more than 64
// characters) replaced, and names drover sets itself prefixed DROVER_.
func journalFieldName(key string) string {
	switch key {
	case "worker":
		return "WORKER_ID"
	case "pid":
		return "WORKER_PID"
	case "generation":
		return "GENERATION"
	case "exit":
		return "EXIT_STATUS"
	}
	b := make([]byte, 0, len(key)+len("DROVER_"))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	// journald keeps fields with a leading _ for itself.
	name := strings.TrimLeft(string(b), "_")
	switch {
	case name == "", name[0] >= '0' && name[0] <= '9',
		name == "MESSAGE", name == "PRIORITY", name == "SYSLOG_IDENTIFIER",
		name == "CODE_FILE", name == "CODE_LINE", name == "CODE_FUNC":
		name = "DROVER_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}
