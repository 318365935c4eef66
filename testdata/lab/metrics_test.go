package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// testMetrics: a unit pair from drover init --metrics, and a real
// Prometheus server (Debian's) scraping drover through the
// socket-activated metrics socket. The workers never see that socket;
// Prometheus sees drover_worker_restarts_total rise after a kill -9 and
// drover_reloads_total after systemctl reload.
func testMetrics(b *box) {
	const name = "metered"
	ports := make([]int, 3)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			b.t.Fatal(err)
		}
		ports[i] = p
	}
	addr, metricsAddr, promAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	b.removeAtEnd(name+".service", name+".socket", name+"-metrics.socket")
	if _, code := b.try("/usr/bin/drover", "init", name, "--listen", addr, "--metrics", metricsAddr, "--install", "--", MyappPath); code != 0 {
		b.t.Fatalf("drover init --metrics --install exited %d", code)
	}
	b.sh("systemctl", "start", name+".socket", name+"-metrics.socket")
	if _, err := b.getAddr(addr, 30*time.Second); err != nil {
		b.t.Fatalf("first request on %s: %v", addr, err)
	}
	st := b.waitStatus("every worker ready", name, 30*time.Second, false, func(st droverStatus) bool {
		return st.Drover != nil && st.Drover.Ready == st.Drover.Workers && st.Drover.Workers > 0
	})
	for _, p := range st.Drover.Processes {
		env := b.sh("sh", "-c", fmt.Sprintf(`tr '\0' '\n' < /proc/%d/environ | grep ^LISTEN_FD`, p.Pid))
		if !strings.Contains(env, "LISTEN_FDS=1\n") || !strings.Contains(env, "LISTEN_FDNAMES=web\n") {
			b.t.Errorf("worker %d got %q: the metrics socket reached a worker", p.Pid, env)
		}
	}

	b.startPrometheus(promAddr, metricsAddr)
	b.waitQuery(promAddr, `up{job="drover"}`, 1)
	b.waitQuery(promAddr, `drover_workers{state="ready"}`, float64(st.Drover.Workers))
	b.waitQuery(promAddr, `sum(drover_worker_restarts_total) or vector(0)`, 0)

	victim := st.Drover.Processes[0]
	b.sh("kill", "-9", strconv.Itoa(victim.Pid))
	b.waitQuery(promAddr, fmt.Sprintf(`drover_worker_restarts_total{slot="%d",reason="signal"}`, victim.Slot), 1)

	b.sh("systemctl", "reload", name)
	b.waitQuery(promAddr, `drover_reloads_total{result="succeeded"}`, 1)
	b.waitQuery(promAddr, `drover_generation`, 2)
	b.waitQuery(promAddr, `drover_reload_duration_seconds_count`, 1)
}

// startPrometheus runs the Prometheus server as a transient unit that
// scrapes target every second, until the scenario ends.
func (b *box) startPrometheus(listen, target string) {
	b.t.Helper()
	const unit = "lab-prometheus"
	b.write("/etc/drover-lab/prometheus.yml", fmt.Sprintf(`# Written by the drover lab.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: drover
    static_configs:
      - targets: [%q]
`, target))
	b.t.Cleanup(func() {
		b.quiet("systemctl", "stop", unit)
		b.quiet("systemctl", "reset-failed", unit)
		b.quiet("rm", "-rf", "/var/lib/lab-prometheus")
	})
	b.sh("systemd-run", "--unit", unit, "--property", "StateDirectory=lab-prometheus", PrometheusPath,
		"--config.file=/etc/drover-lab/prometheus.yml", "--storage.tsdb.path=/var/lib/lab-prometheus",
		"--web.listen-address="+listen)
}

// waitQuery asks Prometheus's HTTP API until the query's one result is
// want (waitFor logs how long that took).
func (b *box) waitQuery(prom, query string, want float64) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("Prometheus: %s == %v", query, want), 30*time.Second, func() (bool, string) {
		v, err := promQuery(prom, query)
		if err != nil {
			return false, err.Error()
		}
		return v == want, strconv.FormatFloat(v, 'g', -1, 64)
	})
}

// promQuery runs an instant query and returns its single value.
func promQuery(prom, query string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + prom + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("answer %q: %w", body, err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", query, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: %d series, want 1", query, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
