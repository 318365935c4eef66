package output

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// Recent gives the last lines written, oldest first, as written after
// their time, without the level prefix of a journal stream; the ring keeps
// the last 200.
func TestTextSinkRecent(t *testing.T) {
	s := NewTextSink(io.Discard, io.Discard)
	if got := s.Recent(10); len(got) != 0 {
		t.Errorf("before any line: %q", got)
	}
	w := &Meta{ID: 1, Pid: 42}
	for i := range recentMax + 5 {
		s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: fmt.Appendf(nil, "line %d", i)})
	}
	got := s.Recent(3)
	if len(got) != 3 {
		t.Fatalf("Recent(3) = %q", got)
	}
	for i, line := range got {
		if want := fmt.Sprintf("[w1 42] line %d", recentMax+2+i); !strings.HasSuffix(line, " "+want) {
			t.Errorf("line %d: %q, want the time then %q", i, line, want)
		}
	}
	if all := s.Recent(1000); len(all) != recentMax || !strings.HasSuffix(all[0], "] line 5") {
		t.Errorf("Recent(1000): %d lines from %q; want the last %d", len(all), all[0], recentMax)
	}

	s = NewTextSink(io.Discard, io.Discard)
	s.levelPrefix = true
	s.write(&Entry{worker: w, stream: streamStderr, priority: 3, message: []byte("x")})
	if got := s.Recent(5); len(got) != 1 || !strings.HasSuffix(got[0], " [w1 42] x") {
		t.Errorf("with level prefix: %q", got)
	}
}
