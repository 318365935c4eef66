package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/testdata/testbin"
)

func snapshotOf(s Snapshot) func() (Snapshot, error) {
	return func() (Snapshot, error) { return s, nil }
}

// Every family passes client_golang's linter (the rules promtool applies).
func TestFamiliesLint(t *testing.T) {
	m := New("v1", snapshotOf(Snapshot{Phase: "serving", Generation: 3, MaxFailures: 5,
		Workers: []Worker{{Slot: 0, State: "ready"}, {Slot: 1, State: "backing-off"}},
		Slots:   []Slot{{ID: 0, HasWorker: true, Pid: 1, RSSBytes: 1 << 20, CPUSeconds: 1.5, StartTime: 1e9}, {ID: 1, RecentFailures: 2}}}))
	m.Restarted(1, "signal")
	m.Recycled(0, "memory")
	m.Reloaded(ReloadFailed, 2*time.Second)
	lines, _ := m.OutputCounters(0, "stdout")
	lines.Add(3)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	want := `
# HELP drover_workers Worker processes by state (backing-off: slots waiting to restart theirs).
# TYPE drover_workers gauge
drover_workers{state="backing-off"} 1
drover_workers{state="draining"} 0
drover_workers{state="hung"} 0
drover_workers{state="ready"} 1
drover_workers{state="starting"} 0
# HELP drover_slot_recent_failures Failures of the slot within --failure-window; reaching drover_max_failures is a crash loop.
# TYPE drover_slot_recent_failures gauge
drover_slot_recent_failures{slot="0"} 0
drover_slot_recent_failures{slot="1"} 2
# HELP drover_worker_resident_memory_bytes Resident memory of the slot's worker (of its cgroup where it has one).
# TYPE drover_worker_resident_memory_bytes gauge
drover_worker_resident_memory_bytes{slot="0"} 1.048576e+06
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"drover_workers", "drover_slot_recent_failures", "drover_worker_resident_memory_bytes"); err != nil {
		t.Error(err)
	}
}

// A loop that does not answer makes the scrape fail visibly (HTTP 500
// with the reason), not quietly lose the gauges.
func TestSnapshotErrorFailsTheScrape(t *testing.T) {
	m := New("v1", func() (Snapshot, error) { return Snapshot{}, errors.New("loop stuck") })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	srv := NewServer(m, l, log)
	go srv.Serve()
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "loop stuck") {
		t.Errorf("scrape: %d %s, want 500 naming the error", resp.StatusCode, body)
	}
}

// The shipped alerting rules load, and fire when they should (promtool's
// own rule unit tests, testdata/rules_test.yml).
func TestAlertRules(t *testing.T) {
	promtool := testbin.Tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "../../units/drover.rules.yml"},
		{"test", "rules", "testdata/rules_test.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
