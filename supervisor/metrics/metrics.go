package metrics

import (
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is drover's registry and the families the event loop counts.
// Its methods are safe from any goroutine.
type Metrics struct {
	registry       *prometheus.Registry
	restarts       *prometheus.CounterVec
	recycles       *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	reloadDuration *durations
	crashLoops     prometheus.Counter
	lines          *prometheus.CounterVec
	dropped        *prometheus.CounterVec
}

const reloadDurationName = "drover_reload_duration_seconds"

// Reload results, the values of drover_reloads_total's result label.
const (
	ReloadSucceeded = "succeeded"
	ReloadFailed    = "failed"
)

// New registers every family. snapshot is called at each scrape for the
// gauges of the moment.
func New(version string, snapshot func() (Snapshot, error)) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_worker_restarts_total",
			Help: "Workers restarted in a slot after the one before failed, by the failure's reason.",
		}, []string{"slot", "reason"}),
		recycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_worker_recycles_total",
			Help: "Workers replaced without downtime while healthy enough to serve (memory, lifetime, not listening), by reason.",
		}, []string{"slot", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_reloads_total",
			Help: "Reloads (systemctl reload, drover reload, SIGHUP) that ended, by result: succeeded or failed (the old version kept serving).",
		}, []string{"result"}),
		reloadDuration: newDurations(reloadDurationName,
			"How long reloads took, from the request to the last new worker ready (or the failure).",
			prometheus.ExponentialBuckets(0.05, 2, 14)), // 50ms .. ~7 min
		crashLoops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_crash_loops_total",
			Help: "Crash loops: a slot failed --max-failures times within --failure-window, and drover is stopping (systemd's Restart= decides what follows).",
		}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_worker_output_lines_total",
			Help: "Lines of worker output that went through drover (dev mode, or without journald); under journald workers write to it directly and are not counted.",
		}, []string{"slot", "stream"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_worker_output_dropped_lines_total",
			Help: "Lines of worker output drover dropped because the log sink froze for 100ms with its queue full.",
		}, []string{"slot", "stream"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "drover_build_info",
		Help:        "Always 1; the labels say which drover runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reloads.WithLabelValues(ReloadSucceeded)
	m.reloads.WithLabelValues(ReloadFailed)
	m.registry.MustRegister(
		m.restarts, m.recycles, m.reloads, m.reloadDuration, m.crashLoops, m.lines, m.dropped, build,
		newStateCollector(snapshot),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is for tests and the HTTP handler.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func slotLabel(slot int) string { return strconv.Itoa(slot) }

// Restarted counts a restart in slot after a failure of kind reason.
func (m *Metrics) Restarted(slot int, reason string) {
	m.restarts.WithLabelValues(slotLabel(slot), reason).Inc()
}

// Recycled counts a finished recycle of slot's worker.
func (m *Metrics) Recycled(slot int, reason string) {
	m.recycles.WithLabelValues(slotLabel(slot), reason).Inc()
}

// Reloaded counts a reload that ended with result after took.
func (m *Metrics) Reloaded(result string, took time.Duration) {
	m.reloads.WithLabelValues(result).Inc()
	m.reloadDuration.Observe(took.Seconds())
}

// CrashLooped counts a crash loop.
func (m *Metrics) CrashLooped() { m.crashLoops.Inc() }

// OutputCounters returns the line and dropped-line counters of one of a
// slot's streams ("stdout" or "stderr").
func (m *Metrics) OutputCounters(slot int, stream string) (lines, dropped prometheus.Counter) {
	l := slotLabel(slot)
	return m.lines.WithLabelValues(l, stream), m.dropped.WithLabelValues(l, stream)
}
