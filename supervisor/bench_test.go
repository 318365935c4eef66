package supervisor

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/droverd/drover/supervisor/sockets"
)

// BenchmarkReload measures a reload from request to READY=1 with 2 and 8
// workers (batch 1), and splits it: the new workers' start-to-ready time
// (paid one after another), the old workers' drain (in parallel, after),
// and what is left, drover's own overhead.
func BenchmarkReload(b *testing.B) {
	for _, n := range []int{2, 8} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			sup, hook := runBench(b, Config{Workers: n})

			var total, ready, drain time.Duration
			b.ResetTimer()
			for i := range b.N {
				hook.Reset()
				start := time.Now()
				if err := sup.Reload(); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				b.StopTimer()
				gen := i + 2
				// Wait for the old generation's drains to finish before the
				// next reload, and read the split from the log.
				drainStart := map[any]time.Time{}
				for exited := 0; exited < n; {
					exited = 0
					for _, e := range hook.AllEntries() {
						switch {
						case e.Message == "worker ready" && e.Data["generation"] == gen:
						case e.Message == "draining worker" && e.Data["generation"] == gen-1:
							drainStart[e.Data["pid"]] = e.Time
						case e.Message == "worker exited" && e.Data["generation"] == gen-1:
							exited++
						}
					}
					time.Sleep(time.Millisecond)
				}
				for _, e := range hook.AllEntries() {
					switch {
					case e.Message == "worker ready" && e.Data["generation"] == gen:
						ready += e.Data["took"].(time.Duration)
					case e.Message == "worker exited" && e.Data["generation"] == gen-1:
						drain += e.Time.Sub(drainStart[e.Data["pid"]])
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/reload")
			b.ReportMetric(float64(ready.Microseconds())/float64(b.N*n)/1000, "ms-start-to-ready/worker")
			b.ReportMetric(float64(drain.Microseconds())/float64(b.N*n)/1000, "ms-drain/worker")
			b.ReportMetric(float64((total-ready).Microseconds())/float64(b.N)/1000, "ms-overhead/reload")
		})
	}
}

// waitAllReady waits for drover's "all N workers ready".
func waitAllReady(b *testing.B, hook *logtest.Hook) {
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, e := range hook.AllEntries() {
			if strings.HasPrefix(e.Message, "all ") && strings.HasSuffix(e.Message, " workers ready") {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatal("workers never all ready")
}

// BenchmarkHealthSampling measures what health costs an otherwise idle
// drover with 64 workers: its CPU time per second of wall time (getrusage
// of this process, which runs the supervisor; the workers are children and
// do not count). health=liveness is the default, a tick every 5 s;
// health=memory adds --max-memory, a tick every second.
func BenchmarkHealthSampling(b *testing.B) {
	const workers, window = 64, 10 * time.Second
	for _, tc := range []struct {
		name      string
		maxMemory int64
	}{{"liveness", 0}, {"memory", 1 << 30}} {
		b.Run("health="+tc.name, func(b *testing.B) {
			runBench(b, Config{Workers: workers, MaxMemory: tc.maxMemory})
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				before := selfCPU(b)
				time.Sleep(window)
				cpu += selfCPU(b) - before
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/(float64(b.N)*window.Seconds()), "cpu-ms/s")
		})
	}
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runBench runs a supervisor of test workers in report mode with cfg's
// other settings until the benchmark ends, once every worker is ready.
func runBench(b *testing.B, cfg Config) (*Supervisor, *logtest.Hook) {
	logger, hook := logtest.NewNullLogger()
	cfg.Command = []string{testworkerBin, "-mode", "report"}
	cfg.Listen = []sockets.ListenSpec{{Name: "web", Network: "tcp", Address: "127.0.0.1:0"}}
	cfg.Log, cfg.Trampoline = logger, droverBin
	sup, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	waitAllReady(b, hook)
	return sup, hook
}
