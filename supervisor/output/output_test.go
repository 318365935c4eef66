package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/droverd/drover/testdata/testbin"
)

// recordingSink keeps copies of every entry.
type recordingSink struct {
	mu      sync.Mutex
	entries []recorded
}

type recorded struct {
	worker    Meta
	stream    outputStream
	priority  int
	message   string
	lineBreak lineBreak
	continued bool
	dropped   int
}

func (r *recordingSink) write(e *Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, recorded{*e.worker, e.stream, e.priority, string(e.message), e.lineBreak, e.continued, e.dropped})
	return nil
}

func (r *recordingSink) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.entries...)
}

func (r *recordingSink) of(s outputStream) []recorded {
	var out []recorded
	for _, e := range r.all() {
		if e.stream == s {
			out = append(out, e)
		}
	}
	return out
}

// lines joins pieces cut at the line limit back into lines, checking that
// every piece but a line's last is marked line-max and the ones after it
// continued.
func joinPieces(t *testing.T, entries []recorded) []recorded {
	t.Helper()
	var out []recorded
	open := false
	for _, e := range entries {
		if e.continued != open {
			t.Fatalf("entry %.40q: continued=%v, but the previous entry's line-max=%v", e.message, e.continued, open)
		}
		if open {
			last := &out[len(out)-1]
			last.message += e.message
			last.lineBreak = e.lineBreak
			if e.priority != last.priority {
				t.Errorf("piece of a line has priority %d, its first piece %d", e.priority, last.priority)
			}
		} else {
			out = append(out, e)
		}
		open = e.lineBreak == breakLineMax
	}
	if open {
		t.Fatal("last entry is cut at line-max but nothing follows")
	}
	return out
}

func TestSyslogPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		prio int
		rest string
		ok   bool
	}{
		{"<3>boom", 3, "boom", true},
		{"<0>", 0, "", true},
		{"<7> x", 7, " x", true},
		{"<03>x", 3, "x", true},
		{"<007>x", 7, "x", true},
		{"<8>x", 0, "<8>x", false},   // not a priority without facility
		{"<13>x", 0, "<13>x", false}, // a facility: journald does not take it here either
		{"<0007>x", 0, "<0007>x", false},
		{"<>x", 0, "<>x", false},
		{"<a>x", 0, "<a>x", false},
		{"<3", 0, "<3", false},
		{"x<3>", 0, "x<3>", false},
		{"", 0, "", false},
	} {
		prio, rest, ok := syslogPrefix([]byte(tc.in))
		if prio != tc.prio || string(rest) != tc.rest || ok != tc.ok {
			t.Errorf("syslogPrefix(%q) = %d, %q, %v; want %d, %q, %v", tc.in, prio, rest, ok, tc.prio, tc.rest, tc.ok)
		}
	}
}

// The splitting rules, fed through readers that cut the input anywhere:
// one byte at a time puts every boundary (in a prefix, at a newline, at
// the line limit) between two reads.
func TestForwardOutputSplitsLines(t *testing.T) {
	const lineMax = 16
	long := strings.Repeat("abcdefgh", 5) // 40 bytes: pieces of 16, 16, 8
	input := "plain\n" +
		"<3>error\n" +
		"\n" +
		"<9>not a prefix\n" +
		strings.Repeat("x", lineMax) + "\n" + // exactly the limit: whole
		strings.Repeat("y", lineMax+1) + "\n" + // one over: two pieces
		"<4>" + long + "\n" +
		"bin\x00\xff\xfe\n" +
		"partial"
	want := []recorded{
		{priority: 6, message: "plain"},
		{priority: 3, message: "error"},
		{priority: 6, message: ""},
		{priority: 6, message: "<9>not a prefix"},
		{priority: 6, message: strings.Repeat("x", lineMax)},
		{priority: 6, message: strings.Repeat("y", lineMax), lineBreak: breakLineMax},
		{priority: 6, message: "y", continued: true},
		// The prefix is read from the whole first piece, then removed: the
		// first piece is lineMax bytes of input, prefix included.
		{priority: 4, message: long[:lineMax-3], lineBreak: breakLineMax},
		{priority: 4, message: long[lineMax-3 : 2*lineMax-3], lineBreak: breakLineMax, continued: true},
		{priority: 4, message: long[2*lineMax-3:], continued: true},
		{priority: 6, message: "bin\x00\xff\xfe"},
		{priority: 6, message: "partial", lineBreak: breakEOF},
	}
	meta := &Meta{ID: 2, Pid: 1234, Generation: 3, Identifier: "app"}
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(input) },
		"one-byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(input)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			sink := &recordingSink{}
			stats := forwardOutput(r(), streamStdout, meta, sink, Limits{lineMax: lineMax})
			got := sink.all()
			if len(got) != len(want) {
				t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
			}
			for i, g := range got {
				w := want[i]
				w.worker, w.stream = *meta, streamStdout
				if g != w {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
			if stats.entries != len(want) || stats.dropped != 0 || stats.readErr != nil {
				t.Errorf("stats %+v", stats)
			}
		})
	}
}

// A stderr line without a prefix is priority 3; with one, the prefix wins.
func TestForwardOutputStderrPriority(t *testing.T) {
	sink := &recordingSink{}
	forwardOutput(strings.NewReader("oops\n<6>fine\n"), streamStderr, &Meta{}, sink, Limits{})
	got := sink.all()
	if len(got) != 2 || got[0].priority != 3 || got[1].priority != 6 || got[1].message != "fine" {
		t.Fatalf("got %+v", got)
	}
}

// child is a real process whose output a Capture forwards.
type child struct {
	cmd  *exec.Cmd
	out  *Capture
	done chan struct{} // closed once the process is reaped
	err  error         // cmd.Wait's result, once done
}

// startWithOutput starts cmd with its stdout and stderr captured by a
// Capture forwarding to sink. One goroutine reaps it; when the test
// ends it is killed if still running (os.Process signals through a pidfd,
// so never a recycled pid) and its output closed, whatever happened.
func startWithOutput(t testing.TB, sink Sink, lim Limits, meta Meta, cmd *exec.Cmd) *child {
	t.Helper()
	out, err := NewCapture()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out.Stdout, out.Stderr
	if err := cmd.Start(); err != nil {
		out.Abort()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	meta.Pid = cmd.Process.Pid
	out.Start(meta, sink, lim)
	c := &child{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
		out.Close()
	})
	return c
}

// wait waits for the process to exit and fails the test if it did not
// exit 0.
func (c *child) wait(t testing.TB) {
	t.Helper()
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("%s: %v", c.cmd.Path, c.err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("%s did not exit", c.cmd.Path)
	}
}

// A real process writes both streams: priorities and prefixes, a 1 MB line,
// NULs and invalid UTF-8, a last line without newline on each stream.
func TestWorkerOutputFromRealProcess(t *testing.T) {
	dir := t.TempDir()
	bigLine := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	bigLine[0], bigLine[1], bigLine[2] = '<', '5', '>'
	stdout := slicesConcat(
		[]byte("hello\n<3>went wrong\n"),
		bigLine, []byte("\n"),
		[]byte("nul\x00inside and \xc3\x28 bad utf-8\n"),
		[]byte("no newline at the end"),
	)
	stderr := []byte("<4>careful\nplain stderr\nlast")
	os.WriteFile(filepath.Join(dir, "out"), stdout, 0o644)
	os.WriteFile(filepath.Join(dir, "err"), stderr, 0o644)

	sink := &recordingSink{}
	meta := Meta{ID: 1, Generation: 2, Identifier: "app"}
	c := startWithOutput(t, sink, Limits{}, meta,
		exec.Command("sh", "-c", `cat "$1"; cat "$2" >&2`, "sh", filepath.Join(dir, "out"), filepath.Join(dir, "err")))
	c.wait(t)
	if !c.out.Wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end after the process exited")
	}
	for _, e := range sink.all() {
		if e.worker.Pid != c.cmd.Process.Pid || e.worker.ID != 1 || e.worker.Generation != 2 {
			t.Fatalf("entry attributed to %+v, want worker 1 pid %d generation 2", e.worker, c.cmd.Process.Pid)
		}
	}

	outEntries := sink.of(streamStdout)
	pieces := 0
	for _, e := range outEntries {
		if len(e.message) > defaultLineMax {
			t.Errorf("entry of %d bytes, over the %d limit", len(e.message), defaultLineMax)
		}
		if e.continued || e.lineBreak == breakLineMax {
			pieces++
		}
	}
	if want := (len(bigLine) + defaultLineMax - 1) / defaultLineMax; pieces != want {
		t.Errorf("1 MiB line in %d pieces, want %d", pieces, want)
	}
	gotOut := joinPieces(t, outEntries)
	wantOut := []recorded{
		{priority: 6, message: "hello"},
		{priority: 3, message: "went wrong"},
		{priority: 5, message: string(bigLine[3:])},
		{priority: 6, message: "nul\x00inside and \xc3\x28 bad utf-8"},
		{priority: 6, message: "no newline at the end", lineBreak: breakEOF},
	}
	checkLines(t, "stdout", gotOut, wantOut)
	checkLines(t, "stderr", sink.of(streamStderr), []recorded{
		{priority: 4, message: "careful"},
		{priority: 3, message: "plain stderr"},
		{priority: 3, message: "last", lineBreak: breakEOF},
	})
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func checkLines(t *testing.T, what string, got, want []recorded) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.priority != w.priority || g.message != w.message || g.lineBreak != w.lineBreak {
			t.Errorf("%s line %d: got prio %d break %q %.60q (%d bytes); want prio %d break %q %.60q (%d bytes)",
				what, i, g.priority, g.lineBreak, g.message, len(g.message), w.priority, w.lineBreak, w.message, len(w.message))
		}
	}
}

// stuckSink blocks every write until released.
type stuckSink struct {
	recordingSink
	release chan struct{}
}

func (s *stuckSink) write(e *Entry) error {
	<-s.release
	return s.recordingSink.write(e)
}

// spewReport mirrors testworker's SpewReport.
type spewReport struct {
	Lines      int   `json:"lines"`
	MaxWriteNs int64 `json:"max_write_ns"`
	TotalNs    int64 `json:"total_ns"`
}

func readSpewReport(t testing.TB, path string) spewReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r spewReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// checkSpewLines checks that the lines of a spew arrived in order, none
// twice, and that those delivered plus those reported dropped are all.
func checkSpewLines(t *testing.T, entries []recorded, total int) (delivered, dropped int) {
	t.Helper()
	last := -1
	for _, e := range entries {
		if e.dropped > 0 {
			dropped += e.dropped
			continue
		}
		seq, err := strconv.Atoi(strings.Fields(e.message)[1])
		if err != nil || !strings.HasPrefix(e.message, "spew ") {
			t.Fatalf("not a spew line: %.60q", e.message)
		}
		if seq <= last {
			t.Fatalf("line %d after line %d", seq, last)
		}
		last = seq
		delivered++
	}
	if delivered+dropped != total {
		t.Errorf("%d lines delivered + %d reported dropped = %d, want %d", delivered, dropped, delivered+dropped, total)
	}
	return delivered, dropped
}

// A sink that takes nothing at all must not stop a worker: the worker's
// whole burst goes through while the sink is stuck; drover drops what does
// not fit and says exactly how many lines.
func TestStuckSinkDoesNotBlockWorker(t *testing.T) {
	const lines = 200000
	report := filepath.Join(t.TempDir(), "spew.json")
	sink := &stuckSink{release: make(chan struct{})}
	lim := Limits{queueBytes: 256 << 10, stallMax: 20 * time.Millisecond}
	c := startWithOutput(t, sink, lim, Meta{ID: 0},
		exec.Command(testworkerBin, "-mode", "spew", "-lines", strconv.Itoa(lines), "-spew-report", report))
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("spew: %v", c.err)
		}
	case <-time.After(waitLimit):
		close(sink.release)
		t.Fatal("the worker did not get its burst out while the sink was stuck: drover blocked it")
	}
	r := readSpewReport(t, report)
	t.Logf("%d lines in %v while the sink was stuck; longest write %v",
		r.Lines, time.Duration(r.TotalNs), time.Duration(r.MaxWriteNs))
	// A hang guard with room for a loaded machine, not a benchmark: the
	// reader waits 20ms for the sink, then drops.
	if max := time.Duration(r.MaxWriteNs); max > 2*time.Second {
		t.Errorf("a write waited %v", max)
	}

	close(sink.release)
	if !c.out.Wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end")
	}
	delivered, dropped := checkSpewLines(t, sink.of(streamStdout), lines)
	if dropped == 0 {
		t.Error("nothing dropped although the sink was stuck: the queue bound does not hold")
	}
	if notices := countDropNotices(t, sink.all()); notices == 0 {
		t.Error("no drop notice")
	}
	t.Logf("%d delivered, %d dropped", delivered, dropped)
}

func countDropNotices(t *testing.T, entries []recorded) int {
	t.Helper()
	n := 0
	for _, e := range entries {
		if e.dropped > 0 {
			n++
			if e.priority != 4 || !strings.Contains(e.message, fmt.Sprintf("%d lines of worker output dropped", e.dropped)) {
				t.Errorf("bad drop notice %+v", e)
			}
		}
	}
	return n
}

// slowSink takes entries slower than a worker writes them: it pauses 1ms
// every 50 entries. The pause is the slowness under test, not a wait for
// an event.
type slowSink struct {
	recordingSink
	n int
}

func (s *slowSink) write(e *Entry) error {
	s.n++ // one stream only: no lock needed
	if s.n%50 == 0 {
		time.Sleep(time.Millisecond)
	}
	return s.recordingSink.write(e)
}

// A sink slower than the worker but moving loses nothing: the worker is
// slowed to the sink's pace.
func TestSlowSinkLosesNothing(t *testing.T) {
	const lines = 20000
	report := filepath.Join(t.TempDir(), "spew.json")
	sink := &slowSink{}
	// A small queue, so the sink's pace shows; a stall bound no loaded
	// machine reaches between two entries.
	lim := Limits{queueBytes: 64 << 10, stallMax: waitLimit}
	c := startWithOutput(t, sink, lim, Meta{},
		exec.Command(testworkerBin, "-mode", "spew", "-lines", strconv.Itoa(lines), "-spew-report", report))
	c.wait(t)
	if !c.out.Wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end")
	}
	_, dropped := checkSpewLines(t, sink.of(streamStdout), lines)
	if dropped != 0 {
		t.Errorf("%d lines dropped by a sink that kept moving", dropped)
	}
	r := readSpewReport(t, report)
	t.Logf("worker throttled to %.0f lines/s; longest write %v, of which drover waited for the sink %v",
		float64(lines)/time.Duration(r.TotalNs).Seconds(), time.Duration(r.MaxWriteNs), c.out.stats[0].maxWait)
	if c.out.stats[0].maxWait == 0 {
		t.Error("the reader never waited for the sink: the queue bound did not come into play")
	}
}

// Lines a gap cuts into are dropped whole and counted once, also when
// gaps follow each other inside one line.
func TestGapAccounting(t *testing.T) {
	sink := &recordingSink{}
	var lines, dropped countingCounter
	ls := &lineSplitter{sink: sink, lineMax: 100, entry: Entry{worker: &Meta{}, stream: streamStdout},
		lines: &lines, droppedCount: &dropped}
	feedGap := func(s string) {
		var g outputGap
		g.add([]byte(s))
		ls.gap(g)
	}
	ls.feed([]byte("one\ntw"))      // "tw" pending
	feedGap("o\nthree\nfo")         // "two", "three" and "fo.." lost: 3
	ls.feed([]byte("ur still"))     // rest of "four": skipped
	feedGap("more of four")         // still "four": 0
	ls.feed([]byte(" end\nfive\n")) // "five" arrives
	feedGap("six\n")                // exactly one line: 1
	ls.feed([]byte("seven\n"))
	ls.feed([]byte(strings.Repeat("x", 250))) // one line in three entries
	ls.flush()

	var got []string
	for _, e := range sink.all() {
		if e.dropped > 0 {
			got = append(got, fmt.Sprintf("<%d dropped>", e.dropped))
		} else {
			got = append(got, e.message)
		}
	}
	x := strings.Repeat("x", 100)
	want := []string{"one", "<3 dropped>", "five", "<1 dropped>", "seven", x, x, x[:50]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if ls.stats.dropped != 4 {
		t.Errorf("stats.dropped = %d, want 4", ls.stats.dropped)
	}
	// The metrics count lines, not entries: the long line counts once.
	if lines != 4 || dropped != 4 {
		t.Errorf("counted %v lines and %v dropped, want 4 and 4", lines, dropped)
	}
}

// countingCounter is a Counter for tests.
type countingCounter float64

func (c *countingCounter) Add(v float64) { *c += countingCounter(v) }

// When a process the worker started keeps the pipes open, wait gives up
// within its bound; once that process ends, forwarding ends too.
func TestWorkerOutputHeldByGrandchild(t *testing.T) {
	// The grandchild, cat, holds the worker's stdout and lives until the
	// test closes hold (or the test process dies): no pid to kill.
	release, hold, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	cmd := exec.Command("sh", "-c", `cat <&3 & echo "started cat"`)
	cmd.ExtraFiles = []*os.File{release}
	sink := &recordingSink{}
	c := startWithOutput(t, sink, Limits{}, Meta{}, cmd)
	release.Close()
	c.wait(t)
	start := time.Now()
	if c.out.Wait(200*time.Millisecond, waitLimit) {
		t.Fatal("wait says forwarded to the end while the grandchild holds stdout")
	}
	if took := time.Since(start); took > waitLimit {
		t.Errorf("wait took %v", took)
	}
	// The grandchild ends; so does its output, and the worker's line is
	// there.
	fmt.Fprintln(hold, "from the grandchild")
	hold.Close()
	if !c.out.Wait(waitLimit, waitLimit) {
		t.Fatal("output not forwarded to the end after the grandchild exited")
	}
	got := sink.of(streamStdout)
	if len(got) != 2 || got[0].message != "started cat" || got[1].message != "from the grandchild" {
		t.Fatalf("got %+v", got)
	}
}

func TestTextSink(t *testing.T) {
	var stdout, stderr bytes.Buffer
	s := NewTextSink(&stdout, &stderr)
	w := &Meta{ID: 2, Pid: 1234}
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: []byte("hello")})
	s.write(&Entry{worker: w, stream: streamStderr, priority: 3, message: []byte("bad\x00\xff\r\x1b[31mred\u009b\tü")})
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: []byte("cut"), lineBreak: breakLineMax})
	s.write(&Entry{worker: w, stream: streamStdout, priority: 6, message: []byte("rest"), continued: true})
	s.write(&Entry{worker: w, stream: streamStdout, priority: 4, message: []byte("drover: 3 lines dropped"), dropped: 3})
	if got, want := stdout.String(), "[w2 1234] hello\n[w2 1234] cut\n[w2 1234]+ rest\n"; got != want {
		t.Errorf("stdout:\n%q\nwant\n%q", got, want)
	}
	if got, want := stderr.String(), "[w2 1234] bad\\x00\\xff\\x0d\x1b[31mred\\u009b\tü\n[w2 1234] drover: 3 lines dropped\n"; got != want {
		t.Errorf("stderr:\n%q\nwant\n%q", got, want)
	}

	var journal bytes.Buffer
	s = NewTextSink(&journal, &journal)
	s.levelPrefix = true
	s.write(&Entry{worker: w, stream: streamStderr, priority: 3, message: []byte("x")})
	if got := journal.String(); got != "<3>[w2 1234] x\n" {
		t.Errorf("with level prefix: %q", got)
	}
}

// Lines from many workers at once come out whole, one per line.
func TestTextSinkDoesNotInterleave(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := NewTextSink(w, w)
	const workers, lines = 8, 200
	long := strings.Repeat("z", 5000) // over PIPE_BUF: the kernel alone would not keep it whole
	var wg sync.WaitGroup
	for id := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			meta := &Meta{ID: id, Pid: 1000 + id}
			for i := range lines {
				s.write(&Entry{worker: meta, stream: streamStdout, message: fmt.Appendf(nil, "%d %s", i, long)})
			}
		}()
	}
	go func() { wg.Wait(); w.Close() }()
	all, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	got := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	if len(got) != workers*lines {
		t.Fatalf("%d lines, want %d", len(got), workers*lines)
	}
	for _, line := range got {
		var id, pid, i int
		var rest string
		if n, _ := fmt.Sscanf(line, "[w%d %d] %d %s", &id, &pid, &i, &rest); n != 4 || rest != long || pid != 1000+id {
			t.Fatalf("mangled line %.80q", line)
		}
		key := strconv.Itoa(id)
		if i != next[key] {
			t.Fatalf("worker %d: line %d after %d", id, i, next[key]-1)
		}
		next[key]++
	}
}

// testworkerBin is testdata/testworker, built once by TestMain.
var testworkerBin string

func TestMain(m *testing.M) {
	testbin.Main(m, map[*string]string{&testworkerBin: testbin.Testworker})
}

// waitLimit bounds every wait in these tests; it is a hang guard, not a
// timing assertion.
const waitLimit = 30 * time.Second
