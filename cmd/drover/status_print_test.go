package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/droverd/drover/supervisor/control"
)

// hostile is what a worker (or a unit's StatusText, which carries drover's
// status line) may send: clear screen, set the window title, a C1 CSI,
// bytes that are not UTF-8, a tab and a newline that would break the table.
const hostile = "\x1b[2J\x1b]0;pwned\x07\u009b31m\xff\tcol\nrow"

// drover status prints what came from a worker escaped, so nothing reaches
// the operator's terminal as a control sequence; --json keeps the text (JSON
// escapes it).
func TestStatusEscapesWorkerText(t *testing.T) {
	report := statusReport{
		Unit: &unitInfo{Name: "myapp.service", ActiveState: "active", SubState: "running", StatusText: hostile},
		Drover: &control.Status{
			Pid: 1, StatusText: hostile, LastReloadError: hostile,
			Sockets: []string{"unix:/run/" + hostile}, Command: []string{"/usr/bin/myapp", hostile},
			Processes: []control.WorkerStatus{{Slot: 0, Pid: 2, Generation: 1, State: "ready", Started: time.Now(), Status: hostile}},
		},
	}
	for _, withUnit := range []bool{true, false} {
		r := report
		if !withUnit {
			r.Unit = nil // drover's own status line is printed instead
		}
		var out bytes.Buffer
		printReport(&out, r, false)
		text := out.String()
		for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if bad := unsafeForTerminal(line); bad != "" {
				t.Errorf("line %d of drover status has %s: %q", i, bad, line)
			}
		}
		if want := `\x1b[2J\x1b]0;pwned\x07\u009b31m\xff\x09col\x0arow`; strings.Count(text, want) < 3 {
			t.Errorf("drover status does not show the worker's text escaped (%q):\n%s", want, text)
		}
	}

	var out bytes.Buffer
	printReport(&out, report, true)
	var back statusReport
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	want := strings.ToValidUTF8(hostile, "\ufffd") // JSON carries text, not bytes
	if back.Unit.StatusText != want || back.Drover.Processes[0].Status != want || back.Drover.Command[1] != want {
		t.Errorf("drover status --json changed the text: %+v", back)
	}
}

// unsafeForTerminal names the first thing in line a terminal could act on
// or misread: a control character (C0, DEL, C1) or bytes that are not UTF-8.
func unsafeForTerminal(line string) string {
	if !utf8.ValidString(line) {
		return "invalid UTF-8"
	}
	for _, r := range line {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 {
			return "a control character"
		}
	}
	return ""
}
