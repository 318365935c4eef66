package top

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/droverd/drover/supervisor/control"
)

func TestSparkline(t *testing.T) {
	var h history
	if s := h.sparkline(); s != strings.Repeat(" ", historyLen) {
		t.Errorf("empty: %q", s)
	}
	h = h.add(0).add(50).add(100).add(250)
	if s := h.sparkline(); s != strings.Repeat(" ", historyLen-4)+"▁▅██" {
		t.Errorf("0, 50, 100, 250%%: %q", s)
	}
	for i := range 40 {
		h = h.add(float64(i))
	}
	if s := h.sparkline(); len(h) != historyLen || utf8.RuneCountInString(s) != historyLen || !strings.HasSuffix(s, "▄") {
		t.Errorf("after 44 samples: %d kept, %q", len(h), s)
	}
}

// Histories follow pids: a replaced worker's goes, the new one starts
// empty, a backing-off slot has none.
func TestRecordByPid(t *testing.T) {
	hs := map[int]history{}
	record(hs, []control.WorkerStatus{{Pid: 1, CPUPercent: 10}, {Pid: 2, CPUPercent: 20}})
	record(hs, []control.WorkerStatus{{Pid: 1, CPUPercent: 11}, {Pid: 3, CPUPercent: 30}, {Slot: 2}})
	if len(hs) != 2 || len(hs[1]) != 2 || len(hs[3]) != 1 || hs[2] != nil {
		t.Errorf("histories: %v", hs)
	}
}
