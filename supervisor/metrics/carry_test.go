package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// An upgrade carries the counters and the reload duration histogram:
// the new image exposes the same series, and goes on counting from them.
func TestCarry(t *testing.T) {
	old := New("v1", snapshotOf(Snapshot{}))
	for _, d := range []time.Duration{10 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, time.Hour} {
		old.Reloaded(ReloadSucceeded, d)
	}
	old.Reloaded(ReloadFailed, 2*time.Second)
	old.Restarted(1, "signal")

	next := New("v2", snapshotOf(Snapshot{}))
	next.Carry(old.Carried())
	names := []string{"drover_reload_duration_seconds", "drover_reloads_total", "drover_worker_restarts_total"}
	for _, name := range names {
		n, err := testutil.GatherAndCount(old.Registry(), name)
		if err != nil || n == 0 {
			t.Fatalf("%s before: %d series, %v", name, n, err)
		}
	}
	if err := testutil.GatherAndCompare(next.Registry(), strings.NewReader(exposition(t, old, names)), names...); err != nil {
		t.Errorf("after Carry: %v", err)
	}

	// And counts on: one more reload of 0.3s lands in its bucket.
	old.Reloaded(ReloadSucceeded, 300*time.Millisecond)
	next.Reloaded(ReloadSucceeded, 300*time.Millisecond)
	if err := testutil.GatherAndCompare(next.Registry(), strings.NewReader(exposition(t, old, names)), names...); err != nil {
		t.Errorf("after one more reload: %v", err)
	}
}

// exposition is m's families names in the text format.
func exposition(t *testing.T, m *Metrics, names []string) string {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		for _, name := range names {
			if f.GetName() == name {
				if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return b.String()
}
