package output

import "time"

// recentMax is how many lines a TextSink keeps for Recent.
const recentMax = 200

// recent is a ring of the last lines a TextSink wrote, as written (with
// the time before them), for drover top in dev mode, where no journal
// holds them.
type recent struct {
	lines [recentMax]string
	next  int // where the next line goes
	full  bool
}

func (r *recent) add(line string) {
	r.lines[r.next] = line
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
		out = append(out, r.lines[(i+recentMax)%recentMax])
	}
	return out
}

// Recent returns the last n lines (at most 200) the sink wrote, oldest
// first, each after the time it was written.
func (t *TextSink) Recent(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recent.last(n)
}

// stamp is the time before a recent line, as drover logs shows it.
func stamp(now time.Time) string { return now.Format(time.StampMilli) + " " }
