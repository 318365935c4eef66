package metrics

import (
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// durations is a histogram of drover's own rather than client_golang's,
// whose buckets cannot be set: an upgrade carries it, as it carries the
// counters, so that histogram_quantile() and rate() see no reset.
type durations struct {
	desc   *prometheus.Desc
	bounds []float64 // upper bounds, ascending

	mu      sync.Mutex
	buckets []uint64 // observations per bound, not cumulative
	count   uint64
	sum     float64
}

func newDurations(name, help string, bounds []float64) *durations {
	return &durations{desc: prometheus.NewDesc(name, help, nil, nil), bounds: bounds, buckets: make([]uint64, len(bounds))}
}

// Observe counts one value: in the first bucket whose bound is not below
// it (le), or only in +Inf.
func (d *durations) Observe(v float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := sort.SearchFloat64s(d.bounds, v); i < len(d.bounds) {
		d.buckets[i]++
	}
	d.count++
	d.sum += v
}

func (d *durations) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *durations) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := d.cumulative()
	byBound := make(map[float64]uint64, len(d.bounds))
	for i, b := range d.bounds {
		byBound[b] = counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(d.desc, d.count, d.sum, byBound)
}

// cumulative is the count of observations up to each bound (le), as the
// exposition format counts buckets. d.mu is held.
func (d *durations) cumulative() []uint64 {
	out := make([]uint64, len(d.bounds))
	var n uint64
	for i := range d.bounds {
		n += d.buckets[i]
		out[i] = n
	}
	return out
}

// carried is the histogram as Carried entries, named as the exposition
// format names its series: NAME_bucket{le=...} (cumulative), NAME_sum and
// NAME_count.
func (d *durations) carried(name string) []Carried {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Carried, 0, len(d.bounds)+2)
	for i, n := range d.cumulative() {
		out = append(out, Carried{Name: name + "_bucket", Labels: map[string]string{"le": formatBound(d.bounds[i])}, Value: float64(n)})
	}
	return append(out, Carried{Name: name + "_sum", Value: d.sum}, Carried{Name: name + "_count", Value: float64(d.count)})
}

// carry adds what carried gave, from entries of the histogram name; the
// rest of entries is ignored. Buckets of other bounds are dropped (a new
// drover with other bounds); the count and sum are kept.
func (d *durations) carry(name string, entries []Carried) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cumulative := map[string]uint64{}
	for _, c := range entries {
		switch c.Name {
		case name + "_bucket":
			cumulative[c.Labels["le"]] = uint64(c.Value)
		case name + "_sum":
			d.sum += c.Value
		case name + "_count":
			d.count += uint64(c.Value)
		}
	}
	var below uint64
	for i, b := range d.bounds {
		n, ok := cumulative[formatBound(b)]
		if !ok {
			continue
		}
		d.buckets[i] += n - min(n, below)
		below = n
	}
}

func formatBound(b float64) string { return strconv.FormatFloat(b, 'g', -1, 64) }
