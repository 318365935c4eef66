package output

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/droverd/drover/supervisor/journal"
	"github.com/droverd/drover/supervisor/journal/journaltest"
)

// BenchmarkWorkerOutput measures how fast drover forwards a worker's output
// and how long the worker waits on drover. Each iteration, a real
// testworker writes a burst of 200,000 lines of 100 bytes to its stdout
// pipe, one write(2) per line, and times every write.
//
//	lines/s       lines forwarded per second, from the worker's start to the
//	              last line in the sink
//	max-stall-ms  the longest single write(2) in the worker, over all
//	              iterations: the worst a worker saw, whoever caused it
//	max-wait-ms   the longest drover's reader waited for the sink to make
//	              room, leaving the pipe unread: drover's share of
//	              max-stall-ms (the rest is the scheduler's: on a busy
//	              2-core machine a worker's thread can wait a time slice)
//	dropped       lines dropped because the sink did not keep up (0 expected)
//
// Sinks: null (the forwarder alone), text (dev mode, to /dev/null),
// fake-journald (the native protocol into a socket that a goroutine of this
// process drains; it shares the CPUs with the forwarder), and journald
// (the real one, when this host has it; the lab measures it otherwise).
func BenchmarkWorkerOutput(b *testing.B) {
	const lines, lineBytes = 200000, 100
	sinks := []struct {
		name string
		make func(b *testing.B) Sink
	}{
		{"null", func(*testing.B) Sink { return nullSink{} }},
		{"text", func(b *testing.B) Sink {
			devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { devNull.Close() })
			return NewTextSink(devNull, devNull)
		}},
		{"fake-journald", func(b *testing.B) Sink {
			fake := journaltest.NewFake(b).Discard()
			s, fallback, _ := testJournalSink(fake.Path)
			b.Cleanup(s.Close)
			return failOnFallback{b, s, fallback}
		}},
		{"journald", func(b *testing.B) Sink {
			if _, err := os.Stat(journal.SocketPath); err != nil {
				b.Skipf("no journald on this host (%v): the lab measures drover's forwarding into a real journald", err)
			}
			s, fallback, _ := testJournalSink(journal.SocketPath)
			b.Cleanup(s.Close)
			return failOnFallback{b, s, fallback}
		}},
	}
	for _, sk := range sinks {
		b.Run("sink="+sk.name, func(b *testing.B) {
			sink := sk.make(b)
			report := filepath.Join(b.TempDir(), "spew.json")
			var elapsed, maxStall, maxWait time.Duration
			dropped := 0
			for range b.N {
				start := time.Now()
				c := startWithOutput(b, sink, Limits{}, Meta{Identifier: "bench"},
					exec.Command(testworkerBin, "-mode", "spew", "-lines", strconv.Itoa(lines),
						"-line-bytes", strconv.Itoa(lineBytes), "-spew-report", report))
				c.wait(b)
				if !c.out.Wait(waitLimit, waitLimit) {
					b.Fatal("output not forwarded to the end")
				}
				elapsed += time.Since(start)
				r := readSpewReport(b, report)
				maxStall = max(maxStall, time.Duration(r.MaxWriteNs))
				for _, st := range c.out.stats {
					dropped += st.dropped
					maxWait = max(maxWait, st.maxWait)
				}
			}
			b.SetBytes(lines * lineBytes)
			b.ReportMetric(float64(lines*b.N)/elapsed.Seconds(), "lines/s")
			b.ReportMetric(float64(maxStall.Microseconds())/1000, "max-stall-ms")
			b.ReportMetric(float64(maxWait.Microseconds())/1000, "max-wait-ms")
			b.ReportMetric(float64(dropped), "dropped")
		})
	}
}

// failOnFallback fails the benchmark if the journald sink fell back to
// stderr: its figures would not be journald's.
type failOnFallback struct {
	b        *testing.B
	s        *JournalSink
	fallback *journaltest.Buffer
}

func (f failOnFallback) write(e *Entry) error {
	err := f.s.write(e)
	if f.fallback.Len() > 0 {
		f.b.Error("journald sink fell back to stderr")
	}
	return err
}

// nullSink discards everything: for measuring the forwarder alone.
type nullSink struct{}

func (nullSink) write(*Entry) error { return nil }
