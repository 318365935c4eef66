package top

import (
	"strings"

	"github.com/droverd/drover/supervisor/control"
)

// historyLen is how many samples a sparkline shows: at one refresh a
// second, the last half minute.
const historyLen = 30

// sparks are the eight block heights of a sparkline, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// history is one worker's recent CPU% samples, oldest first.
type history []float64

func (h history) add(v float64) history {
	h = append(h, v)
	if len(h) > historyLen {
		h = h[len(h)-historyLen:]
	}
	return h
}

// sparkline draws h right-aligned in historyLen cells, so the newest
// sample is always in the same column and a young worker's line grows
// from the right. The scale is fixed, 0 to 100% of one CPU (more is a
// full block), so that rows compare at a glance.
func (h history) sparkline() string {
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", historyLen-len(h)))
	for _, v := range h {
		i := int(v/100*float64(len(sparks)-1) + 0.5)
		i = max(0, min(i, len(sparks)-1))
		b.WriteRune(sparks[i])
	}
	return b.String()
}

// record adds each worker's sample to its history and forgets the
// workers that are gone. Histories are kept by pid, not slot: during a
// reload a slot holds an old and a new worker at once, and a worker that
// replaced another should not inherit its past.
func record(hs map[int]history, procs []control.WorkerStatus) {
	seen := make(map[int]bool, len(procs))
	for _, p := range procs {
		if p.Pid == 0 {
			continue // backing off: no process to sample
		}
		seen[p.Pid] = true
		hs[p.Pid] = hs[p.Pid].add(p.CPUPercent)
	}
	for pid := range hs {
		if !seen[pid] {
			delete(hs, pid)
		}
	}
}
