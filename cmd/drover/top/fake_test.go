package top

import (
	"context"
	"sync"
	"time"

	"github.com/droverd/drover/supervisor/control"
)

// fakeSource answers with what the test put in it and records the calls.
type fakeSource struct {
	mu        sync.Mutex
	snap      Snapshot
	err       error
	logs      []string
	logsErr   error
	reloadErr error
	reloads   int
	scales    []int
}

func (f *fakeSource) Status(context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.err
}

func (f *fakeSource) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

func (f *fakeSource) Scale(_ context.Context, delta int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales = append(f.scales, delta)
	return 2 + delta, nil
}

func (f *fakeSource) Logs(context.Context, int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs, f.logsErr
}

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// twoWorkers is a serving drover with two ready workers.
func twoWorkers() *control.Status {
	return &control.Status{
		Pid: 100, State: "serving", StatusText: "2/2 workers ready · generation 1 · 0 restarts",
		Generation: 1, Workers: 2, Ready: 2, Sockets: []string{"127.0.0.1:8080"}, Command: []string{"/usr/bin/myapp"},
		Processes: []control.WorkerStatus{
			{Slot: 0, Pid: 4101, Generation: 1, State: "ready", Started: testNow.Add(-time.Minute), CPUPercent: 12.5, RSSBytes: 6 << 20, Status: "warmed up"},
			{Slot: 1, Pid: 4102, Generation: 1, State: "ready", Started: testNow.Add(-2 * time.Minute), CPUPercent: 100, RSSBytes: 7 << 20, Restarts: 3, Recycles: 1},
		},
	}
}

// newTestModel is a Model on src with a fixed clock and screen.
func newTestModel(src Source) *Model {
	m := New(src, Options{})
	m.now = func() time.Time { return testNow }
	m.Update(teaWindow(160, 40))
	return m
}
