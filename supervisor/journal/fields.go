package journal

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

// StderrIsJournal reports whether drover's stderr is connected to
// journald (JOURNAL_STREAM names it), so drover should log natively.
func StderrIsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// AppendField encodes one field of an entry. name must be valid (A-Z, 0-9, _,
// not starting with _ or a digit). A value with a newline takes the
// binary-safe form: name, newline, 64-bit little-endian length, value,
// newline. Any other bytes, NUL included, are fine in the plain form.
func AppendField(rec []byte, name string, value []byte) []byte {
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

// AppendString is AppendField for a string value.
func AppendString(rec []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		rec = append(rec, name...)
		rec = append(rec, '=')
		rec = append(rec, value...)
		return append(rec, '\n')
	}
	return AppendField(rec, name, []byte(value))
}

// AppendInt is AppendField for an integer value.
func AppendInt(rec []byte, name string, v int) []byte {
	rec = append(rec, name...)
	rec = append(rec, '=')
	rec = strconv.AppendInt(rec, int64(v), 10)
	return append(rec, '\n')
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
	rec = AppendInt(rec, "PRIORITY", logrusPriority(e.Level))
	rec = AppendField(rec, "MESSAGE", msg)
	rec = AppendString(rec, "SYSLOG_IDENTIFIER", "drover")
	for i, k := range keys {
		rec = AppendString(rec, FieldName(k), values[i])
	}
	if e.Caller != nil {
		rec = AppendString(rec, "CODE_FILE", e.Caller.File)
		rec = AppendInt(rec, "CODE_LINE", e.Caller.Line)
		rec = AppendString(rec, "CODE_FUNC", e.Caller.Function)
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

// FieldName turns a logrus field key into a journal field name:
// drover's keys by name, others upper-cased with what journald does not
// accept (anything but A-Z, 0-9 and _, a leading _ or digit, more than 64
// characters) replaced, and names drover sets itself prefixed DROVER_.
func FieldName(key string) string {
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
