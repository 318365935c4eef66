package top

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/droverd/drover/supervisor/control"
)

func TestViewShowsUnitAndWorkers(t *testing.T) {
	src := &fakeSource{snap: Snapshot{Drover: twoWorkers(), Unit: &Unit{
		Name: "myapp.service", ActiveState: "active", SubState: "running", MainPID: 100, NRestarts: 2,
	}}, logs: []string{"[w0 4101] GET /", "drover: worker started"}}
	m := newTestModel(src)
	refreshed(t, m)
	view := m.View()
	for _, want := range []string{
		"myapp.service  active (running) · main pid 100 · 2 restarts by systemd · 12:00:00",
		"drover serving · generation 1 · 2/2 ready",
		"status: 2/2 workers ready · generation 1 · 0 restarts",
		"sockets: 127.0.0.1:8080 · command: /usr/bin/myapp",
		"[w0 4101] GET /", "drover: worker started",
		"q quit · r reload",
	} {
		if !strings.Contains(view, want) {
			t.Errorf("no %q in\n%s", want, view)
		}
	}
	rowRE := regexp.MustCompile(`(?m)^(\d+)\s+(\d+)\s+(\d+)\s+(\w+)\s+(\S+)\s+([\d.]+)\s+([▁-█]+)\s+(\S+)\s+(\d+)\s+(\d+) *(.*)$`)
	rows := rowRE.FindAllStringSubmatch(view, -1)
	if len(rows) != 2 {
		t.Fatalf("want 2 worker rows in\n%s", view)
	}
	want := [][]string{
		{"0", "4101", "1", "ready", "1m0s", "12.5", "▂", "6.0M", "0", "0", "warmed up"},
		{"1", "4102", "1", "ready", "2m0s", "100.0", "█", "7.0M", "3", "1", ""},
	}
	for i, r := range rows {
		if strings.Join(r[1:], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d: %q, want %q", i, r[1:], want[i])
		}
	}
	if lines := strings.Split(view, "\n"); len(lines) != 40 || !strings.HasPrefix(lines[39], "q quit") {
		t.Errorf("%d lines, keys not on the last: %q", len(lines), lines[len(lines)-1])
	}
}

// What workers and the unit say is shown escaped: it must not be able to
// clear the screen or retitle the terminal.
func TestViewEscapesWorkerText(t *testing.T) {
	st := twoWorkers()
	st.Processes[0].Status = "evil \x1b[2J\x1b]0;pwned\x07"
	st.LastReloadError = "worker said \x1b[31m"
	src := &fakeSource{snap: Snapshot{Drover: st, Unit: &Unit{Name: "myapp.service", StatusText: "\x1b[H"}}, logs: []string{"\x1b]0;log\x07"}}
	m := newTestModel(src)
	refreshed(t, m)
	view := m.View()
	if strings.ContainsAny(view, "\x1b\x07") {
		t.Fatalf("control characters on screen: %q", view)
	}
	for _, want := range []string{`evil \x1b[2J\x1b]0;pwned\x07`, `last reload failed: worker said \x1b[31m`, `\x1b]0;log\x07`} {
		if !strings.Contains(view, want) {
			t.Errorf("no %q in\n%s", want, view)
		}
	}
}

// A reload's stage stands out, and each worker's generation tells old
// from new.
func TestViewReloadStage(t *testing.T) {
	st := twoWorkers()
	st.State, st.StatusText = "reloading", "reloading: 1/2 new ready · generation 2"
	st.Processes = append(st.Processes, control.WorkerStatus{Slot: 0, Pid: 4201, Generation: 2, State: "starting", Started: testNow})
	m := newTestModel(&fakeSource{snap: Snapshot{Drover: st}})
	refreshed(t, m)
	view := m.View()
	if !strings.Contains(view, " RELOADING  reloading: 1/2 new ready · generation 2") {
		t.Errorf("no reload banner in\n%s", view)
	}
	if !regexp.MustCompile(`(?m)^0\s+4201\s+2\s+starting\s`).MatchString(view) {
		t.Errorf("no new-generation row in\n%s", view)
	}
}

func TestViewLogsAndBackingOff(t *testing.T) {
	st := twoWorkers()
	st.Processes[1] = control.WorkerStatus{Slot: 1, State: "backing-off", Restarts: 4}
	src := &fakeSource{snap: Snapshot{Drover: st, Control: "/tmp/d/control.sock"}, logsErr: ErrNoLogs}
	m := newTestModel(src)
	refreshed(t, m)
	view := m.View()
	for _, want := range []string{"drover pid 100 at /tmp/d/control.sock", noLogs} {
		if !strings.Contains(view, want) {
			t.Errorf("no %q in\n%s", want, view)
		}
	}
	if !regexp.MustCompile(`(?m)^1\s+-\s+-\s+backing-off\s+-\s+-\s+-\s+4\s+0`).MatchString(view) {
		t.Errorf("backing-off slot:\n%s", view)
	}

	// Only the newest lines that fit are shown, and nothing is wider than
	// the screen.
	src.logsErr = nil
	for i := range 100 {
		src.logs = append(src.logs, "line "+strings.Repeat("x", 300)+" "+time.Duration(i).String())
	}
	refreshed(t, m)
	view = m.View()
	if !strings.Contains(view, "line ") || strings.Contains(view, " 0s") {
		t.Errorf("oldest log line shown, or none:\n%s", view)
	}
	for _, l := range strings.Split(view, "\n") {
		if w := len([]rune(l)); w > 160 {
			t.Fatalf("line of %d cells on a 160-wide screen: %q", w, l)
		}
	}
}
