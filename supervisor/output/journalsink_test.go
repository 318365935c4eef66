package output

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/droverd/drover/supervisor/journal"
	"github.com/droverd/drover/supervisor/journal/journaltest"
)

// testJournalSink is a JournalSink for path, its fallback text in a buffer
// and its own log in a test hook. Its send timeout is a hang guard: only
// the tests of slowness shorten it.
func testJournalSink(path string) (*JournalSink, *journaltest.Buffer, *logtest.Hook) {
	logger, hook := logtest.NewNullLogger()
	var fallback journaltest.Buffer
	s := newJournalSink(logger, &fallback, journal.NewLink(path, waitLimit, journal.RetryAfter))
	return s, &fallback, hook
}

func TestJournalSinkFields(t *testing.T) {
	fake := journaltest.NewFake(t).Read()
	s, fallback, logs := testJournalSink(fake.Path)
	defer s.Close()
	w := &Meta{ID: 2, Pid: 1234, Generation: 3, Identifier: "myapp"}
	// Over any datagram (send buffer 8 MiB, doubled by the kernel): goes in
	// a memfd.
	big := bytes.Repeat([]byte("big "), 17<<20/4)
	for _, e := range []Entry{
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
	got := fake.Wait(t, 8)
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
			if g := got[i].Get(k); g != v {
				t.Errorf("entry %d: %s=%.60q, want %.60q", i, k, g, v)
			}
		}
	}
	if fallback.String() != "" || len(logs.AllEntries()) != 0 {
		t.Errorf("fell back with journald there: %q %v", fallback.String(), logs.AllEntries())
	}
}

func fieldNames(f journaltest.Fields) []string {
	var names []string
	for k := range f {
		names = append(names, k)
	}
	return names
}

// A real worker's output through the journald sink: every line, in order.
func TestWorkerOutputToFakeJournald(t *testing.T) {
	const lines = 20000
	fake := journaltest.NewFake(t).Read()
	s, fallback, _ := testJournalSink(fake.Path)
	defer s.Close()
	c := startWithOutput(t, s, Limits{}, Meta{ID: 1, Generation: 1, Identifier: "testworker"},
		exec.Command(testworkerBin, "-mode", "spew", "-lines", strconv.Itoa(lines)))
	c.wait(t)
	if !c.out.Wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end")
	}
	got := fake.Wait(t, lines)
	for i, e := range got {
		if want := fmt.Sprintf("spew %08d ", i); !strings.HasPrefix(e.Get("MESSAGE"), want) {
			t.Fatalf("entry %d: %.40q, want it to start %q", i, e.Get("MESSAGE"), want)
		}
		if e.Get("WORKER_PID") != strconv.Itoa(c.cmd.Process.Pid) || e.Get("PRIORITY") != "6" {
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
	w := &Meta{ID: 2, Pid: 1234}
	for i := range 3 {
		if err := s.write(&Entry{worker: w, stream: streamStderr, priority: 3, message: fmt.Appendf(nil, "line %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: []byte("out")})
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
	fake := journaltest.NewFake(t) // not reading yet
	s, fallback, logs := testJournalSink(fake.Path)
	defer s.Close()
	s.link = journal.NewLink(fake.Path, 50*time.Millisecond, time.Hour)
	w := &Meta{ID: 0, Pid: 99}
	sent := 0
	for fallback.String() == "" {
		if sent > 100000 {
			t.Fatal("journald's queue never filled")
		}
		s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: fmt.Appendf(nil, "line %d", sent)})
		sent++
	}
	// Now on stderr, without trying journald again.
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: fmt.Appendf(nil, "line %d", sent)})
	sent++
	onStderr := strings.Count(fallback.String(), "\n")
	if onStderr != 2 {
		t.Errorf("%d lines on stderr, want 2: %q", onStderr, fallback.String())
	}
	if n := len(logs.AllEntries()); n != 1 {
		t.Fatalf("%d log entries, want 1 warning: %v", n, logs.AllEntries())
	}

	fake.Read()
	s.link.RetryNow()
	s.link.SetTimeout(waitLimit)
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: []byte("back")})
	got := fake.Wait(t, sent-onStderr+1)
	if m := got[len(got)-1].Get("MESSAGE"); m != "back" {
		t.Errorf("last entry in journald %q, want back", m)
	}
	entries := logs.AllEntries()
	if len(entries) != 2 || entries[1].Message != "journald takes worker output again" {
		t.Errorf("want a note that journald is back, got %v", entries)
	}
	// Every line exactly once, in journald or on stderr.
	seen := map[string]int{}
	for _, e := range got {
		seen[e.Get("MESSAGE")]++
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
