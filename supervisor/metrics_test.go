package supervisor

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/sockets"
	"github.com/droverd/drover/testdata/testbin"
)

// scrape fetches /metrics over HTTP, as Prometheus does, and parses it.
func scrape(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	client := &http.Client{Timeout: waitLimit}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v\n%s", addr, resp.StatusCode, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the exposition: %v\n%s", err, body)
	}
	return string(body), families
}

// value is the sample of family whose labels include want, or -1.
func value(families map[string]*dto.MetricFamily, family string, want map[string]string) float64 {
	f := families[family]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// waitValue scrapes until family{want} is v.
func waitValue(t *testing.T, addr, family string, want map[string]string, v float64) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		_, fams := scrape(t, addr)
		got := value(fams, family, want)
		if got == v {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", family, want, got, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real drover with real workers, scraped over HTTP: the gauges at
// start, a restart counted with its reason after kill -9, a reload
// counted and timed, and an exposition promtool accepts.
func TestMetricsAfterKillAndReload(t *testing.T) {
	cfg, reports := testConfig(t, 2, "report")
	cfg.MetricsListen = &sockets.ListenSpec{Network: "tcp", Address: "127.0.0.1:0"}
	cfg.Version = "v9.9.9-test"
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	addr := h.sup.MetricsAddr()

	fams := waitValue(t, addr, "drover_workers", map[string]string{"state": "ready"}, 2)
	for _, c := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"drover_slots", nil, 2},
		{"drover_generation", nil, 1},
		{"drover_phase", map[string]string{"phase": "serving"}, 1},
		{"drover_phase", map[string]string{"phase": "reloading"}, 0},
		{"drover_workers", map[string]string{"state": "backing-off"}, 0},
		{"drover_build_info", map[string]string{"version": "v9.9.9-test"}, 1},
		{"drover_reloads_total", map[string]string{"result": "succeeded"}, 0},
		{"drover_max_failures", nil, 5},
		{"drover_slot_recent_failures", map[string]string{"slot": "1"}, 0},
	} {
		if got := value(fams, c.family, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}
	for _, family := range []string{"drover_worker_resident_memory_bytes", "drover_worker_start_time_seconds"} {
		if got := value(fams, family, map[string]string{"slot": "0"}); got <= 0 {
			t.Errorf("%s{slot=0} = %v, want > 0", family, got)
		}
	}
	if value(fams, "drover_worker_cpu_seconds_total", map[string]string{"slot": "0"}) < 0 {
		t.Error("no drover_worker_cpu_seconds_total for slot 0")
	}
	for _, family := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[family] == nil {
			t.Errorf("no %s: the Go and process collectors are missing", family)
		}
	}

	// kill -9 of slot 1's worker: one restart, reason signal.
	var victim report
	for _, r := range waitReports(t, h, 2) {
		if r.Env["DROVER_WORKER_ID"] == "1" {
			victim = r
		}
	}
	if err := unix.Kill(victim.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	fams = waitValue(t, addr, "drover_worker_restarts_total", map[string]string{"slot": "1", "reason": "signal"}, 1)
	if got := value(fams, "drover_slot_recent_failures", map[string]string{"slot": "1"}); got != 1 {
		t.Errorf("drover_slot_recent_failures{slot=1} = %v after one kill, want 1", got)
	}
	if got := value(fams, "drover_worker_restarts_total", map[string]string{"slot": "0"}); got != -1 {
		t.Errorf("slot 0 was not killed, yet drover_worker_restarts_total{slot=0} = %v", got)
	}

	if err := h.sup.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	fams = waitValue(t, addr, "drover_reloads_total", map[string]string{"result": "succeeded"}, 1)
	for _, c := range []struct {
		family string
		want   float64
	}{{"drover_generation", 2}, {"drover_reload_duration_seconds", 1}} {
		if got := value(fams, c.family, nil); got != c.want {
			t.Errorf("%s = %v after a reload, want %v", c.family, got, c.want)
		}
	}
	body, _ := scrape(t, addr)
	promtoolCheck(t, body)
}

// promtoolCheck runs Prometheus's own linter on an exposition.
func promtoolCheck(t *testing.T, exposition string) {
	t.Helper()
	promtool := testbin.Tool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The metrics socket is drover's: taken out of what the workers get.
func TestTakeMetricsSocket(t *testing.T) {
	for _, c := range []struct {
		names   []string
		name    string
		workers string
		err     string
	}{
		{[]string{"web", "metrics"}, "metrics", "web", ""},
		{[]string{"metrics", "web", "admin"}, "metrics", "web:admin", ""},
		{[]string{"web"}, "", "web", ""},
		{[]string{"web"}, "metrics", "", `--metrics-socket "metrics": systemd passed no socket of that name (LISTEN_FDNAMES=web; set FileDescriptorName=metrics in the metrics .socket unit)`},
		{[]string{"metrics"}, "metrics", "", `--metrics-socket "metrics": it is the only socket systemd passed; the workers need one of their own`},
	} {
		s := &Supervisor{cfg: Config{MetricsSocket: c.name}}
		for _, n := range c.names {
			s.sockets = append(s.sockets, sockets.Socket{Name: n})
		}
		err := s.takeMetricsSocket()
		if fmt.Sprint(err) != c.err && !(err == nil && c.err == "") {
			t.Errorf("%v %q: err %v, want %q", c.names, c.name, err, c.err)
		}
		if err != nil {
			continue
		}
		var got []string
		for _, sock := range s.sockets {
			got = append(got, sock.Name)
		}
		if strings.Join(got, ":") != c.workers {
			t.Errorf("%v %q: workers get %v, want %s", c.names, c.name, got, c.workers)
		}
		if c.name != "" && (s.metricsSocket == nil || s.metricsSocket.Name != c.name) {
			t.Errorf("%v %q: metrics socket %v", c.names, c.name, s.metricsSocket)
		}
	}
}

// A failed reload is counted as failed and drover_reload_failing stays 1
// until a reload succeeds.
func TestMetricsFailedReload(t *testing.T) {
	cfg, reports, script := versionedConfig(t, 2)
	cfg.MetricsListen = &sockets.ListenSpec{Network: "tcp", Address: "127.0.0.1:0"}
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	addr := h.sup.MetricsAddr()

	installScript(t, script, fmt.Sprintf("exec %s -mode crash", testworkerBin))
	if err := h.sup.Reload(); err == nil {
		t.Fatal("Reload of a crashing version succeeded")
	}
	fams := waitValue(t, addr, "drover_reloads_total", map[string]string{"result": "failed"}, 1)
	for family, want := range map[string]float64{"drover_reload_failing": 1, "drover_generation": 1, "drover_reload_duration_seconds": 1} {
		if got := value(fams, family, nil); got != want {
			t.Errorf("%s = %v after a failed reload, want %v", family, got, want)
		}
	}
	installScript(t, script, fmt.Sprintf("exec %s -mode report -report-dir %s", testworkerBin, reports))
	if err := h.sup.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	fams = waitValue(t, addr, "drover_reload_failing", nil, 0)
	if got := value(fams, "drover_reloads_total", map[string]string{"result": "succeeded"}); got != 1 {
		t.Errorf("drover_reloads_total{result=succeeded} = %v, want 1", got)
	}
}
