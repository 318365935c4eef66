package output

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Detach hands back pipes that still carry the worker's output, at once,
// after what was read is with the sink; Resume forwards the rest, so no
// line is lost or doubled across the handover.
func TestDetachAndResume(t *testing.T) {
	c, err := NewCapture()
	if err != nil {
		t.Fatal(err)
	}
	// Lines before and after the handover; the worker waits for a line
	// on stdin in between.
	cmd := exec.Command("/bin/sh", "-c", `echo one; echo two >&2; read x; echo three; echo four >&2`)
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sink := &recordingSink{}
	meta := &Meta{ID: 1, Pid: cmd.Process.Pid}
	c.Start(*meta, sink, Limits{})
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	files, err := c.Detach(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Detach took %v: it waited for its bound instead of the forwarders", took)
	}
	if files[0] == nil || files[1] == nil {
		t.Fatalf("Detach handed back %v, want both pipes", files)
	}
	stdin.Write([]byte("go\n"))
	r := Resume(files, *meta, sink, Limits{})
	cmd.Wait()
	if !r.Wait(time.Second, time.Second) {
		t.Fatal("the resumed capture did not reach EOF")
	}
	var got []string
	for _, e := range sink.all() {
		got = append(got, string(e.message))
	}
	if strings.Join(got, " ") != "one two three four" && strings.Join(got, " ") != "two one three four" &&
		strings.Join(got, " ") != "one two four three" && strings.Join(got, " ") != "two one four three" {
		t.Errorf("lines %q, want one and two, then three and four, each once", got)
	}
}

// A stream that had ended before the handover is handed over as nil: the
// resumed capture forwards the other and still ends.
func TestResumeWithAnEndedStream(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	c := Resume([2]*os.File{nil, r}, Meta{ID: 1}, sink, Limits{})
	w.WriteString("only stderr\n")
	w.Close()
	if !c.Wait(time.Second, time.Second) {
		t.Fatal("the resumed capture did not end")
	}
	if got := sink.all(); len(got) != 1 || string(got[0].message) != "only stderr" || got[0].stream != streamStderr {
		t.Errorf("entries %+v, want the stderr line alone", got)
	}
}
