// Package metrics owns drover's Prometheus metrics: the registry, the
// families drover exports about its workers, reloads and itself, and the
// HTTP server that exposes them on a socket drover keeps for itself (never
// one handed to the workers).
//
// Counters (restarts, recycles, reloads, output lines) are counted by the
// supervisor's event loop as things happen; the gauges of the moment
// (workers by state, generation, per-slot memory and CPU) are read from a
// snapshot the loop takes at each scrape, so a scrape never reads the
// loop's state from another goroutine. An upgrade carries the counters and
// the reload-duration histogram to the next image, so no series resets.
//
// Names and labels follow the Prometheus conventions: base units
// (seconds, bytes), _total for counters, and labels of bounded cardinality
// (slot and reason, never pid or generation).
//
// Specs: https://prometheus.io/docs/practices/naming/ and
// https://prometheus.io/docs/instrumenting/exposition_formats/.
package metrics
