package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Carried is one counter's value, for the image that replaces drover in
// an upgrade: counters go on from where they were, so rate() sees no
// reset. The reload duration histogram goes as its series: _bucket{le},
// _sum and _count.
type Carried struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// carriedVecs are the counters an upgrade carries, by name.
func (m *Metrics) carriedVecs() map[string]*prometheus.CounterVec {
	return map[string]*prometheus.CounterVec{
		"drover_worker_restarts_total":             m.restarts,
		"drover_worker_recycles_total":             m.recycles,
		"drover_reloads_total":                     m.reloads,
		"drover_worker_output_lines_total":         m.lines,
		"drover_worker_output_dropped_lines_total": m.dropped,
	}
}

// Carried returns the counters' values. It gathers them alone, apart from
// the registry, whose gauges would ask the event loop that calls this.
func (m *Metrics) Carried() []Carried {
	vecs := m.carriedVecs()
	reg := prometheus.NewRegistry()
	for _, v := range vecs {
		reg.MustRegister(v)
	}
	reg.MustRegister(m.crashLoops)
	families, err := reg.Gather()
	if err != nil {
		return nil
	}
	var out []Carried
	for _, f := range families {
		if _, ok := vecs[f.GetName()]; !ok && f.GetName() != "drover_crash_loops_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			c := Carried{Name: f.GetName(), Value: metric.GetCounter().GetValue(), Labels: map[string]string{}}
			for _, l := range metric.GetLabel() {
				c.Labels[l.GetName()] = l.GetValue()
			}
			out = append(out, c)
		}
	}
	return append(out, m.reloadDuration.carried(reloadDurationName)...)
}

// Carry adds the counters an earlier image carried.
func (m *Metrics) Carry(counters []Carried) {
	m.reloadDuration.carry(reloadDurationName, counters)
	vecs := m.carriedVecs()
	for _, c := range counters {
		if c.Name == "drover_crash_loops_total" {
			m.crashLoops.Add(c.Value)
			continue
		}
		if v, ok := vecs[c.Name]; ok {
			if counter, err := v.GetMetricWith(c.Labels); err == nil {
				counter.Add(c.Value)
			}
		}
	}
}
