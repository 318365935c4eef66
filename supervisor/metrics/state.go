package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is the supervisor's state at a scrape.
type Snapshot struct {
	// Phase is drover's: starting, serving, reloading, rolling-back or
	// stopping.
	Phase      string
	Generation int // the generation serving
	// Workers is every worker process, with the slots backing off as
	// entries of state "backing-off".
	Workers []Worker
	// Slots is one entry per slot.
	Slots []Slot
	// MaxFailures is --max-failures: a slot whose RecentFailures reaches
	// it is a crash loop.
	MaxFailures int
	// ReloadFailing: the last reload failed (the old version serves),
	// until one succeeds.
	ReloadFailing bool
}

// Worker is one process (or a slot backing off, State "backing-off").
type Worker struct {
	Slot  int
	State string
}

// Slot is what the gauges say of one slot, from its current worker (the
// one serving, or starting in its place).
type Slot struct {
	ID int
	// RecentFailures is how many failures of the slot fall within
	// --failure-window.
	RecentFailures int
	// HasWorker is false while the slot backs off; then the figures below
	// are not exported.
	HasWorker bool
	// Pid is the worker's, for reading its figures; never a label.
	Pid      int
	RSSBytes int64
	// CPUSeconds is the CPU the worker (and its cgroup) used so far.
	CPUSeconds float64
	// StartTime is when the worker started, in Unix seconds.
	StartTime float64
}

// Phases and WorkerStates are every value of the phase and state labels,
// all exported (0 or 1, or a count) so a query never misses a series.
var (
	Phases       = []string{"starting", "serving", "reloading", "rolling-back", "stopping"}
	WorkerStates = []string{"starting", "ready", "draining", "hung", "backing-off"}
)

// stateCollector turns a snapshot into the gauges of the moment.
type stateCollector struct {
	snapshot    func() (Snapshot, error)
	workers     *prometheus.Desc
	slots       *prometheus.Desc
	phase       *prometheus.Desc
	generation  *prometheus.Desc
	rss         *prometheus.Desc
	cpu         *prometheus.Desc
	start       *prometheus.Desc
	failures    *prometheus.Desc
	maxFailures *prometheus.Desc
	failing     *prometheus.Desc
}

func newStateCollector(snapshot func() (Snapshot, error)) *stateCollector {
	slot := []string{"slot"}
	return &stateCollector{
		snapshot:    snapshot,
		workers:     prometheus.NewDesc("drover_workers", "Worker processes by state (backing-off: slots waiting to restart theirs).", []string{"state"}, nil),
		slots:       prometheus.NewDesc("drover_slots", "Worker slots (--workers, or as drover scale set it).", nil, nil),
		phase:       prometheus.NewDesc("drover_phase", "1 for drover's current phase, 0 for the others.", []string{"phase"}, nil),
		generation:  prometheus.NewDesc("drover_generation", "The generation serving: 1 at start, one more with each successful reload.", nil, nil),
		rss:         prometheus.NewDesc("drover_worker_resident_memory_bytes", "Resident memory of the slot's worker (of its cgroup where it has one).", slot, nil),
		cpu:         prometheus.NewDesc("drover_worker_cpu_seconds_total", "CPU time the slot's worker used (its cgroup's where it has one); starts again from 0 with each new worker.", slot, nil),
		start:       prometheus.NewDesc("drover_worker_start_time_seconds", "When the slot's worker started, in Unix seconds.", slot, nil),
		failures:    prometheus.NewDesc("drover_slot_recent_failures", "Failures of the slot within --failure-window; reaching drover_max_failures is a crash loop.", slot, nil),
		maxFailures: prometheus.NewDesc("drover_max_failures", "--max-failures: failures of one slot within --failure-window that make a crash loop.", nil, nil),
		failing:     prometheus.NewDesc("drover_reload_failing", "1 from a failed reload (the old version still serves) until a reload succeeds.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.workers, c.slots, c.phase, c.generation, c.rss, c.cpu, c.start, c.failures, c.maxFailures, c.failing} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	snap, err := c.snapshot()
	if err != nil {
		// The scrape shows the error (promhttp answers 500 with it by
		// default) rather than gauges that silently went missing.
		ch <- prometheus.NewInvalidMetric(c.workers, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counts := map[string]int{}
	for _, w := range snap.Workers {
		counts[w.State]++
	}
	for _, st := range WorkerStates {
		gauge(c.workers, float64(counts[st]), st)
	}
	for _, p := range Phases {
		gauge(c.phase, boolValue(p == snap.Phase), p)
	}
	gauge(c.slots, float64(len(snap.Slots)))
	gauge(c.generation, float64(snap.Generation))
	gauge(c.maxFailures, float64(snap.MaxFailures))
	gauge(c.failing, boolValue(snap.ReloadFailing))
	for _, sl := range snap.Slots {
		l := slotLabel(sl.ID)
		gauge(c.failures, float64(sl.RecentFailures), l)
		if !sl.HasWorker {
			continue
		}
		gauge(c.rss, float64(sl.RSSBytes), l)
		gauge(c.start, sl.StartTime, l)
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, sl.CPUSeconds, l)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
