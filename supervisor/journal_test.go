package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// journalFields is one journal entry: field name to values.
type journalFields map[string][]string

func (f journalFields) get(name string) string {
	if len(f[name]) != 1 {
		return fmt.Sprintf("<%d values>", len(f[name]))
	}
	return f[name][0]
}

// fakeJournald is a datagram socket in a temp dir that decodes what it
// receives as journald does (systemd.io/JOURNAL_NATIVE_PROTOCOL): entries
// in datagrams, or in a sealed memfd passed in an empty datagram.
type fakeJournald struct {
	path string
	conn *net.UnixConn
	more chan struct{} // signalled on each entry

	mu      sync.Mutex
	entries []journalFields
	errs    []error
}

// newFakeJournald listens; it reads only once read is called, so that a
// test can play a journald that has stopped reading.
func newFakeJournald(t testing.TB) *fakeJournald {
	t.Helper()
	f := &fakeJournald{path: filepath.Join(t.TempDir(), "journal.socket"), more: make(chan struct{}, 1)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	t.Cleanup(func() {
		conn.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, err := range f.errs {
			t.Errorf("fake journald: %v", err)
		}
	})
	return f
}

func (f *fakeJournald) read() *fakeJournald {
	go func() {
		buf := make([]byte, 1<<20)
		oob := make([]byte, unix.CmsgSpace(4))
		for {
			n, oobn, flags, _, err := f.conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			entry, err := decodeDatagram(buf[:n], oob[:oobn], flags)
			f.mu.Lock()
			if err != nil {
				f.errs = append(f.errs, err)
			} else {
				f.entries = append(f.entries, entry)
			}
			f.mu.Unlock()
			notifyOne(f.more)
		}
	}()
	return f
}

func decodeDatagram(b, oob []byte, flags int) (journalFields, error) {
	if flags&unix.MSG_TRUNC != 0 {
		return nil, errors.New("datagram truncated")
	}
	if len(oob) == 0 {
		return decodeJournalEntry(b)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("datagram of %d bytes with an fd; journald wants it empty", len(b))
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control message: %v (%d)", err, len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("fds: %v (%d)", err, len(fds))
	}
	file := os.NewFile(uintptr(fds[0]), "entry")
	defer file.Close()
	// journald takes a memfd from anyone only when it is sealed.
	seals, err := unix.FcntlInt(file.Fd(), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if err != nil || seals != want {
		return nil, fmt.Errorf("memfd seals %#x (%v), want %#x", seals, err, want)
	}
	// The fd shares its file offset with the sender's, which is at the end:
	// read from 0, as journald does (it maps the file).
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.NewSectionReader(file, 0, st.Size()))
	if err != nil {
		return nil, err
	}
	return decodeJournalEntry(data)
}

// decodeJournalEntry parses as journald's server_process_native_message:
// a line up to '\n' is NAME=value; a line without '=' is a name followed
// by a 64-bit little-endian length, the value and a '\n'.
func decodeJournalEntry(b []byte) (journalFields, error) {
	fields := journalFields{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("field %.20q without newline", b)
		}
		line := b[:nl]
		var name, value []byte
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			name, value = line[:eq], line[eq+1:]
			b = b[nl+1:]
		} else {
			name, b = line, b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("field %s: short length", name)
			}
			n := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if uint64(len(b)) < n+1 || b[n] != '\n' {
				return nil, fmt.Errorf("field %s: bad binary value", name)
			}
			value, b = b[:n], b[n+1:]
		}
		if !validJournalName(string(name)) {
			return nil, fmt.Errorf("field name %q is not valid for journald", name)
		}
		fields[string(name)] = append(fields[string(name)], string(value))
	}
	return fields, nil
}

// validJournalName is journald's journal_field_valid for clients.
func validJournalName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (f *fakeJournald) all() []journalFields {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]journalFields(nil), f.entries...)
}

// wait returns the entries once there are n.
func (f *fakeJournald) wait(t testing.TB, n int) []journalFields {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		if got := f.all(); len(got) >= n {
			return got
		}
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("fake journald got %d entries, want %d", len(f.all()), n)
		}
	}
}

// testJournalSink is a journalSink for path, its fallback text in a buffer
// and its own log in a test hook. Its send timeout is a hang guard: only
// the tests of slowness shorten it.
func testJournalSink(path string) (*journalSink, *lockedBuffer, *logtest.Hook) {
	logger, hook := logtest.NewNullLogger()
	var fallback lockedBuffer
	s := newJournalSink(logger, &fallback)
	s.conn = journalConn{path: path, timeout: waitLimit}
	return s, &fallback, hook
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestJournalSinkFields(t *testing.T) {
	fake := newFakeJournald(t).read()
	s, fallback, logs := testJournalSink(fake.path)
	defer s.close()
	w := &workerMeta{ID: 2, Pid: 1234, Generation: 3, Identifier: "myapp"}
	// Over any datagram (send buffer 8 MiB, doubled by the kernel): goes in
	// a memfd.
	big := bytes.Repeat([]byte("big "), 17<<20/4)
	for _, e := range []logEntry{
		{worker: w, stream: streamStdout, priority: 6, message: []byte("hello")},
		{worker: w, stream: streamStderr, priority: 3, message: []byte("first piece"), lineBreak: breakLineMax},
		{worker: w, stream: streamStderr, priority: 3, message: []byte("last piece"), continued: true},
		{worker: w, stream: streamStdout, priority: 6, message: []byte("no newline"), lineBreak: breakEOF},
		{worker: w, stream: streamStdout, priority: 4, message: []byte("drover: 5 lines of worker output dropped"), dropped: 5},
		{worker: w, stream: streamStdout, priority: 6, message: []byte("nul\x00and\xff\xfe=")},
		{worker: w, stream: streamStdout, priority: 6, message: []byte("")},
		{worker: w, stream: streamStdout, priority: 6, message: big},
	} {
		if err := s.write(&e); err != nil {
			t.Fatal(err)
		}
	}
	got := fake.wait(t, 8)
	base := map[string]string{"SYSLOG_IDENTIFIER": "myapp", "WORKER_ID": "2", "WORKER_PID": "1234", "GENERATION": "3"}
	want := []map[string]string{
		{"MESSAGE": "hello", "PRIORITY": "6", "DROVER_STREAM": "stdout"},
		{"MESSAGE": "first piece", "PRIORITY": "3", "DROVER_STREAM": "stderr", "DROVER_LINE_BREAK": "line-max"},
		{"MESSAGE": "last piece", "PRIORITY": "3", "DROVER_STREAM": "stderr"},
		{"MESSAGE": "no newline", "PRIORITY": "6", "DROVER_STREAM": "stdout", "DROVER_LINE_BREAK": "eof"},
		{"MESSAGE": "drover: 5 lines of worker output dropped", "PRIORITY": "4", "DROVER_STREAM": "stdout", "DROVER_DROPPED": "5"},
		{"MESSAGE": "nul\x00and\xff\xfe=", "PRIORITY": "6", "DROVER_STREAM": "stdout"},
		{"MESSAGE": "", "PRIORITY": "6", "DROVER_STREAM": "stdout"},
		{"MESSAGE": string(big), "PRIORITY": "6", "DROVER_STREAM": "stdout"},
	}
	for i, w := range want {
		for k, v := range base {
			w[k] = v
		}
		if len(got[i]) != len(w) {
			t.Errorf("entry %d: fields %v, want %d", i, fieldNames(got[i]), len(w))
		}
		for k, v := range w {
			if g := got[i].get(k); g != v {
				t.Errorf("entry %d: %s=%.60q, want %.60q", i, k, g, v)
			}
		}
	}
	if fallback.String() != "" || len(logs.AllEntries()) != 0 {
		t.Errorf("fell back with journald there: %q %v", fallback.String(), logs.AllEntries())
	}
}

func fieldNames(f journalFields) []string {
	var names []string
	for k := range f {
		names = append(names, k)
	}
	return names
}

// A real worker's output through the journald sink: every line, in order.
func TestWorkerOutputToFakeJournald(t *testing.T) {
	const lines = 20000
	fake := newFakeJournald(t).read()
	s, fallback, _ := testJournalSink(fake.path)
	defer s.close()
	c := startWithOutput(t, s, outputLimits{}, workerMeta{ID: 1, Generation: 1, Identifier: "testworker"},
		exec.Command(testworkerBin, "-mode", "spew", "-lines", strconv.Itoa(lines)))
	c.wait(t)
	if !c.out.wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end")
	}
	got := fake.wait(t, lines)
	for i, e := range got {
		if want := fmt.Sprintf("spew %08d ", i); !strings.HasPrefix(e.get("MESSAGE"), want) {
			t.Fatalf("entry %d: %.40q, want it to start %q", i, e.get("MESSAGE"), want)
		}
		if e.get("WORKER_PID") != strconv.Itoa(c.cmd.Process.Pid) || e.get("PRIORITY") != "6" {
			t.Fatalf("entry %d: %v", i, e)
		}
	}
	if fallback.String() != "" {
		t.Errorf("fell back: %.200q", fallback.String())
	}
}

// No journald: everything goes to stderr as text, priorities kept as <N>
// prefixes, and drover says so once.
func TestJournalSinkFallsBackWhenAbsent(t *testing.T) {
	s, fallback, logs := testJournalSink(filepath.Join(t.TempDir(), "no-journald"))
	w := &workerMeta{ID: 2, Pid: 1234}
	for i := range 3 {
		if err := s.write(&logEntry{worker: w, stream: streamStderr, priority: 3, message: fmt.Appendf(nil, "line %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.write(&logEntry{worker: w, stream: streamStdout, priority: 6, message: []byte("out")})
	if got, want := fallback.String(), "<3>[w2 1234] line 0\n<3>[w2 1234] line 1\n<3>[w2 1234] line 2\n<6>[w2 1234] out\n"; got != want {
		t.Errorf("fallback:\n%q\nwant\n%q", got, want)
	}
	entries := logs.AllEntries()
	if len(entries) != 1 || entries[0].Level != logrus.WarnLevel || !strings.Contains(entries[0].Message, "journald does not take worker output") {
		t.Fatalf("want one warning, got %v", entries)
	}
	if err, _ := entries[0].Data[logrus.ErrorKey].(error); err == nil || !strings.Contains(err.Error(), "no-journald") {
		t.Errorf("warning does not say what failed: %v", entries[0].Data)
	}
}

// A journald that stops reading: after the send timeout, output goes to
// stderr (said once); once journald reads again, back to it (said once).
func TestJournalSinkFallsBackWhenSlow(t *testing.T) {
	fake := newFakeJournald(t) // not reading yet
	s, fallback, logs := testJournalSink(fake.path)
	defer s.close()
	s.conn.timeout = 50 * time.Millisecond
	s.retryAfter = time.Hour
	w := &workerMeta{ID: 0, Pid: 99}
	sent := 0
	for fallback.String() == "" {
		if sent > 100000 {
			t.Fatal("journald's queue never filled")
		}
		s.write(&logEntry{worker: w, stream: streamStdout, priority: 6, message: fmt.Appendf(nil, "line %d", sent)})
		sent++
	}
	// Now on stderr, without trying journald again.
	s.write(&logEntry{worker: w, stream: streamStdout, priority: 6, message: fmt.Appendf(nil, "line %d", sent)})
	sent++
	onStderr := strings.Count(fallback.String(), "\n")
	if onStderr != 2 {
		t.Errorf("%d lines on stderr, want 2: %q", onStderr, fallback.String())
	}
	if n := len(logs.AllEntries()); n != 1 {
		t.Fatalf("%d log entries, want 1 warning: %v", n, logs.AllEntries())
	}

	fake.read()
	s.mu.Lock()
	s.retryAt = time.Time{} // the retry is due
	s.conn.timeout = waitLimit
	s.mu.Unlock()
	s.write(&logEntry{worker: w, stream: streamStdout, priority: 6, message: []byte("back")})
	got := fake.wait(t, sent-onStderr+1)
	if m := got[len(got)-1].get("MESSAGE"); m != "back" {
		t.Errorf("last entry in journald %q, want back", m)
	}
	entries := logs.AllEntries()
	if len(entries) != 2 || entries[1].Message != "journald takes worker output again" {
		t.Errorf("want a note that journald is back, got %v", entries)
	}
	// Every line exactly once, in journald or on stderr.
	seen := map[string]int{}
	for _, e := range got {
		seen[e.get("MESSAGE")]++
	}
	for l := range strings.SplitSeq(strings.TrimSpace(fallback.String()), "\n") {
		seen[strings.TrimPrefix(l, "<6>[w0 99] ")]++
	}
	for i := range sent {
		if n := seen[fmt.Sprintf("line %d", i)]; n != 1 {
			t.Errorf("line %d seen %d times", i, n)
		}
	}
}

func TestJournalHook(t *testing.T) {
	fake := newFakeJournald(t).read()
	var fallback lockedBuffer
	hook := newJournalHook(fake.path, &fallback)
	defer hook.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.TraceLevel)
	log.ExitFunc = func(int) {} // Fatal must not end the test
	log.AddHook(hook)

	log.WithFields(logrus.Fields{
		"worker": 2, "pid": 1234, "generation": 3, "exit": "exit status 3",
		"reason": "crashed twice", "took": 15 * time.Millisecond, "peer-pid": 7,
		"_secret": "x", "message": "shadow", "9lives": true,
	}).WithError(errors.New("boom\nsecond line")).Warn("worker failed")
	got := fake.wait(t, 1)[0]
	want := map[string]string{
		"PRIORITY": "4", "SYSLOG_IDENTIFIER": "drover",
		"MESSAGE":   `worker failed 9lives=true _secret=x error="boom\nsecond line" exit="exit status 3" generation=3 message=shadow peer-pid=7 pid=1234 reason="crashed twice" took=15ms worker=2`,
		"WORKER_ID": "2", "WORKER_PID": "1234", "GENERATION": "3", "EXIT_STATUS": "exit status 3",
		"REASON": "crashed twice", "TOOK": "15ms", "PEER_PID": "7", "SECRET": "x",
		"DROVER_MESSAGE": "shadow", "DROVER_9LIVES": "true", "ERROR": "boom\nsecond line",
	}
	for k, v := range want {
		if g := got.get(k); g != v {
			t.Errorf("%s=%q, want %q", k, g, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %d", fieldNames(got), len(want))
	}

	levels := []struct {
		log  func(...any)
		prio string
	}{
		{log.Trace, "7"}, {log.Debug, "7"}, {log.Info, "6"}, {log.Warn, "4"}, {log.Error, "3"}, {log.Fatal, "2"},
		{func(a ...any) {
			defer func() { recover() }()
			log.Panic(a...)
		}, "2"},
	}
	for _, l := range levels {
		l.log("level test")
	}
	got2 := fake.wait(t, 1+len(levels))[1:]
	for i, l := range levels {
		if p := got2[i].get("PRIORITY"); p != l.prio || got2[i].get("MESSAGE") != "level test" {
			t.Errorf("level %d: PRIORITY=%s MESSAGE=%q, want %s", i, p, got2[i].get("MESSAGE"), l.prio)
		}
	}
	if fallback.String() != "" {
		t.Errorf("fell back with journald there: %q", fallback.String())
	}
}

func TestJournalHookFallsBack(t *testing.T) {
	var fallback lockedBuffer
	hook := newJournalHook(filepath.Join(t.TempDir(), "no-journald"), &fallback)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(hook)
	log.WithField("worker", 1).Info("one")
	log.Error("two")
	lines := strings.Split(strings.TrimSuffix(fallback.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want the notice and 2 entries, got %q", lines)
	}
	if !strings.HasPrefix(lines[0], "<4>drover: journald does not take drover's log (") || !strings.Contains(lines[0], "no-journald") {
		t.Errorf("notice %q", lines[0])
	}
	if lines[1] != `<6>level=info msg=one worker=1` || lines[2] != `<3>level=error msg=two` {
		t.Errorf("entries %q", lines[1:])
	}
}

func TestJournalFieldName(t *testing.T) {
	for key, want := range map[string]string{
		"worker": "WORKER_ID", "pid": "WORKER_PID", "generation": "GENERATION", "exit": "EXIT_STATUS",
		"reason": "REASON", "workers_left": "WORKERS_LEFT", "peer-pid": "PEER_PID", "Mixed.Case": "MIXED_CASE",
		"_x": "X", "__": "DROVER_", "9": "DROVER_9", "message": "DROVER_MESSAGE", "priority": "DROVER_PRIORITY",
		"syslog_identifier": "DROVER_SYSLOG_IDENTIFIER", "ünï": "N__",
		strings.Repeat("a", 70): strings.Repeat("A", 64),
	} {
		got := journalFieldName(key)
		if got != want {
			t.Errorf("journalFieldName(%q) = %q, want %q", key, got, want)
		}
		if !validJournalName(got) {
			t.Errorf("journalFieldName(%q) = %q: not valid for journald", key, got)
		}
	}
}

func FuzzJournalFieldName(f *testing.F) {
	f.Add("worker")
	f.Add("_9x")
	f.Fuzz(func(t *testing.T, key string) {
		if got := journalFieldName(key); !validJournalName(got) {
			t.Errorf("journalFieldName(%q) = %q: not valid for journald", key, got)
		}
	})
}

func TestUseJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	os.Unsetenv("JOURNAL_STREAM")
	if UseJournal() {
		t.Error("UseJournal without JOURNAL_STREAM")
	}
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !UseJournal() {
		t.Error("UseJournal is false with JOURNAL_STREAM naming stderr")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if UseJournal() {
		t.Error("UseJournal with JOURNAL_STREAM naming another file (inherited, stderr redirected)")
	}
}
