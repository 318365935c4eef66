package output

import "time"

// recentMax is how many lines a TextSink keeps for Recent.
const recentMax = 200

// recent is a ring of the last lines a TextSink wrote, as written, for
// drover top in dev mode, where no journal holds them. The time is
// formatted when they are read, not on the path of every line.
type recent struct {
	lines [recentMax]recentLine
	next  int // where the next line goes
	full  bool
}

type recentLine struct {
	at   time.Time
	text string
}

func (r *recent) add(at time.Time, text string) {
	r.lines[r.next] = recentLine{at, text}
	r.next = (r.next + 1) % recentMax
	r.full = r.full || r.next == 0
}

// last returns the last n lines, oldest first.
func (r *recent) last(n int) []string {
	have := r.next
	if r.full {
		have = recentMax
	}
	n = min(n, have)
	out := make([]string, 0, n)
	for i := r.next - n; i < r.next; i++ {
		l := r.lines[(i+recentMax)%recentMax]
		out = append(out, l.at.Format(time.StampMilli)+" "+l.text)
	}
	return out
}

// Recent returns the last n lines (at most 200) the sink wrote, oldest
// first, each after the time it was written, as drover logs shows it.
func (t *TextSink) Recent(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recent.last(n)
}
