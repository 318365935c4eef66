package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/journal/journaltest"
)

func TestJournalHook(t *testing.T) {
	fake := journaltest.NewFake(t).Read()
	var fallback journaltest.Buffer
	hook := newHook(fake.Path, &fallback)
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
	got := fake.Wait(t, 1)[0]
	want := map[string]string{
		"PRIORITY": "4", "SYSLOG_IDENTIFIER": "drover",
		"MESSAGE":   `worker failed 9lives=true _secret=x error="boom\nsecond line" exit="exit status 3" generation=3 message=shadow peer-pid=7 pid=1234 reason="crashed twice" took=15ms worker=2`,
		"WORKER_ID": "2", "WORKER_PID": "1234", "GENERATION": "3", "EXIT_STATUS": "exit status 3",
		"REASON": "crashed twice", "TOOK": "15ms", "PEER_PID": "7", "SECRET": "x",
		"DROVER_MESSAGE": "shadow", "DROVER_9LIVES": "true", "ERROR": "boom\nsecond line",
	}
	for k, v := range want {
		if g := got.Get(k); g != v {
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
	got2 := fake.Wait(t, 1+len(levels))[1:]
	for i, l := range levels {
		if p := got2[i].Get("PRIORITY"); p != l.prio || got2[i].Get("MESSAGE") != "level test" {
			t.Errorf("level %d: PRIORITY=%s MESSAGE=%q, want %s", i, p, got2[i].Get("MESSAGE"), l.prio)
		}
	}
	if fallback.String() != "" {
		t.Errorf("fell back with journald there: %q", fallback.String())
	}
}

func TestJournalHookFallsBack(t *testing.T) {
	var fallback journaltest.Buffer
	hook := newHook(filepath.Join(t.TempDir(), "no-journald"), &fallback)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(hook)
	log.WithField("worker", 1).Info("one")
	log.Error("two")
	hook.Close() // sends what is queued
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
		got := FieldName(key)
		if got != want {
			t.Errorf("FieldName(%q) = %q, want %q", key, got, want)
		}
		if !journaltest.ValidName(got) {
			t.Errorf("FieldName(%q) = %q: not valid for journald", key, got)
		}
	}
}

func FuzzJournalFieldName(f *testing.F) {
	f.Add("worker")
	f.Add("_9x")
	f.Fuzz(func(t *testing.T, key string) {
		if got := FieldName(key); !journaltest.ValidName(got) {
			t.Errorf("FieldName(%q) = %q: not valid for journald", key, got)
		}
	})
}

func TestUseJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	os.Unsetenv("JOURNAL_STREAM")
	if StderrIsJournal() {
		t.Error("UseJournal without JOURNAL_STREAM")
	}
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !StderrIsJournal() {
		t.Error("UseJournal is false with JOURNAL_STREAM naming stderr")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if StderrIsJournal() {
		t.Error("UseJournal with JOURNAL_STREAM naming another file (inherited, stderr redirected)")
	}
}

func fieldNames(f journaltest.Fields) []string {
	var names []string
	for k := range f {
		names = append(names, k)
	}
	return names
}

// A log that takes nothing (journald gone, stderr stuck) never blocks the
// caller: entries beyond the queue are dropped, and one entry says how many
// once the log moves again.
func TestJournalHookNeverBlocks(t *testing.T) {
	stuck := &gate{open: make(chan struct{})}
	hook := newHook(filepath.Join(t.TempDir(), "no-journald"), stuck)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(hook)
	const n = 3 * backlogSize
	done := make(chan struct{})
	go func() {
		for i := range n {
			log.WithField("i", i).Info("entry")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("logging blocked on a stuck log")
	}
	close(stuck.open)
	hook.Close()
	out := stuck.String()
	if !strings.Contains(out, "<4>drover: ") || !strings.Contains(out, "of drover's log entries dropped: journald did not keep up") {
		t.Errorf("no drop notice in %.300q", out)
	}
	if got := strings.Count(out, "msg=entry"); got >= n || got == 0 {
		t.Errorf("%d entries written of %d: want some, and some dropped", got, n)
	}
}

// gate is a writer that blocks until open is closed.
type gate struct {
	open chan struct{}
	journaltest.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	return g.Buffer.Write(p)
}

func TestAsyncNeverBlocks(t *testing.T) {
	stuck := &gate{open: make(chan struct{})}
	a := NewAsync(stuck)
	for range 3 * backlogSize {
		a.Write([]byte("line\n"))
	}
	close(stuck.open)
	a.Close()
	if out := stuck.String(); !strings.Contains(out, "of drover's log entries dropped") {
		t.Errorf("no drop notice in %.200q", out)
	}
}
