// Command testworker is a misbehaving (and one well-behaved) worker for
// drover's tests. Each -mode is one behaviour a supervisor must cope with.
//
//	report           serve HTTP on every passed socket; answer with a JSON
//	                 report of the pid, environment and open fds it got
//	crash            exit at once with -exit-code (after -delay)
//	never-ready      take the sockets but never listen on them; exit on SIGTERM
//	ignore-term      serve, but ignore SIGTERM (only SIGKILL ends it)
//	notify           serve; send READY=1 to NOTIFY_SOCKET after -delay
//	blocking-accept  accept in a plain blocking accept(2) loop on fd 3
//	health           serve like a well-behaved worker, ping the watchdog,
//	                 and misbehave on request (health.go)
//	spew             write -lines lines of -line-bytes bytes to stdout, one
//	                 write(2) each, as fast as it can; time every write and
//	                 write {"lines", "max_write_ns", "total_ns"} to
//	                 -spew-report (how long drover kept it waiting)
//
// -report-dir makes any mode write its report to DIR/<pid>.json at start, so
// a test can see every worker, not only the ones a connection happens to
// reach.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Report is what mode report answers with; tests decode it.
type Report struct {
	Pid int `json:"pid"`
	// Fds maps each open fd number (other than the ones this program opened
	// itself to read them) to its readlink target.
	Fds map[int]string `json:"fds"`
	// Env holds LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*, DROVER_*, JOURNAL_STREAM,
	// SYSTEMD_EXEC_PID, FDSTORE and NODE_* (drover run --node).
	Env map[string]string `json:"env"`
}

func main() {
	mode := flag.String("mode", "report", "behaviour, see the package doc")
	delay := flag.Duration("delay", 0, "wait this long before the mode's key action")
	exitCode := flag.Int("exit-code", 3, "exit code for mode crash, and for -exit-after")
	exitAfter := flag.Duration("exit-after", 0, "in the serving modes, exit with -exit-code this long after starting")
	reportDir := flag.String("report-dir", "", "also write the report to DIR/<pid>.json at start")
	var spew spewOptions
	flag.IntVar(&spew.lines, "lines", 100000, "mode spew: how many lines")
	flag.IntVar(&spew.lineBytes, "line-bytes", 100, "mode spew: bytes per line, newline included (at least 15)")
	flag.StringVar(&spew.report, "spew-report", "", "mode spew: write the timing report to this file")
	flag.Parse()
	if *reportDir != "" {
		if err := writeReport(*reportDir, takeReport()); err != nil {
			fmt.Fprintf(os.Stderr, "testworker: %v\n", err)
			os.Exit(1)
		}
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			fmt.Fprintf(os.Stderr, "testworker: exiting with code %d after %v\n", *exitCode, *exitAfter)
			os.Exit(*exitCode)
		})
	}
	if err := run(*mode, *delay, *exitCode, spew); err != nil {
		fmt.Fprintf(os.Stderr, "testworker: %v\n", err)
		os.Exit(1)
	}
}

func run(mode string, delay time.Duration, exitCode int, spewOpts spewOptions) error {
	// Take the report before anything else opens files.
	report := takeReport()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	switch mode {
	case "report":
		return serve(report, stop)
	case "crash":
		time.Sleep(delay)
		fmt.Fprintf(os.Stderr, "testworker: crashing with exit code %d\n", exitCode)
		os.Exit(exitCode)
	case "never-ready":
		<-stop
		return nil
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		return serve(report, make(chan os.Signal))
	case "notify":
		go func() {
			time.Sleep(delay)
			if _, err := daemon.SdNotify(false, "READY=1\nSTATUS=testworker ready"); err != nil {
				fmt.Fprintf(os.Stderr, "testworker: notify: %v\n", err)
			}
		}()
		return serve(report, stop)
	case "blocking-accept":
		return blockingAccept(report, stop)
	case "spew":
		return spew(spewOpts)
	case "health":
		return health(stop)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func takeReport() Report {
	r := Report{Pid: os.Getpid(), Fds: map[int]string{}, Env: map[string]string{}}
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory fd ReadDir itself opened, now closed
		}
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue
		}
		r.Fds[fd] = target
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		for _, p := range []string{"LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_", "DROVER_", "JOURNAL_STREAM", "SYSTEMD_EXEC_PID", "FDSTORE", "NODE_"} {
			if strings.HasPrefix(k, p) {
				r.Env[k] = v
			}
		}
	}
	return r
}

// writeReport writes atomically (rename), so a reader never sees half a file.
func writeReport(dir string, r Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%d.tmp", r.Pid))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("%d.json", r.Pid)))
}

func listenFDs() ([]*os.File, error) {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: want a positive count", os.Getenv("LISTEN_FDS"))
	}
	if pid := os.Getenv("LISTEN_PID"); pid != strconv.Itoa(os.Getpid()) {
		return nil, fmt.Errorf("LISTEN_PID=%s, but my pid is %d", pid, os.Getpid())
	}
	files := make([]*os.File, n)
	for i := range files {
		files[i] = os.NewFile(uintptr(3+i), "listen-"+strconv.Itoa(i))
	}
	return files, nil
}

func serve(report Report, stop <-chan os.Signal) error {
	files, err := listenFDs()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(report)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	for _, f := range files {
		l, err := net.FileListener(f)
		if err != nil {
			return fmt.Errorf("listener from fd %d: %w", f.Fd(), err)
		}
		f.Close()
		go srv.Serve(l)
	}
	<-stop
	srv.Close()
	return nil
}

// blockingAccept serves fd 3 without any poller: a thread sits in accept(2),
// which is what the listen readiness check must recognise for C-style
// servers.
func blockingAccept(report Report, stop <-chan os.Signal) error {
	if _, err := listenFDs(); err != nil {
		return err
	}
	body, _ := json.Marshal(report)
	go func() {
		for {
			nfd, _, err := unix.Accept(3)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "testworker: accept: %v\n", err)
				os.Exit(1)
			}
			conn := os.NewFile(uintptr(nfd), "conn")
			buf := make([]byte, 4096)
			conn.Read(buf)
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			conn.Close()
		}
	}()
	<-stop
	return nil
}

type spewOptions struct {
	lines, lineBytes int
	report           string
}

// SpewReport is what mode spew writes to -spew-report.
type SpewReport struct {
	Lines      int   `json:"lines"`
	MaxWriteNs int64 `json:"max_write_ns"`
	TotalNs    int64 `json:"total_ns"`
}

// spew writes "spew <8-digit sequence number> xxx...\n" lines straight to
// fd 1, one write(2) per line, the way an unbuffered logger does, and
// times each write: a write that waits is a pipe drover did not empty.
func spew(o spewOptions) error {
	const head = "spew 00000000 "
	if o.lineBytes < len(head)+1 {
		return fmt.Errorf("-line-bytes %d: want at least %d", o.lineBytes, len(head)+1)
	}
	line := bytes.Repeat([]byte{'x'}, o.lineBytes)
	copy(line, head)
	line[len(line)-1] = '\n'
	var maxWrite time.Duration
	start := time.Now()
	for i := range o.lines {
		seq := strconv.Itoa(i)
		copy(line[5:13], "00000000"[len(seq):]+seq)
		t := time.Now()
		if _, err := os.Stdout.Write(line); err != nil {
			return fmt.Errorf("write line %d: %w", i, err)
		}
		maxWrite = max(maxWrite, time.Since(t))
	}
	r := SpewReport{Lines: o.lines, MaxWriteNs: maxWrite.Nanoseconds(), TotalNs: time.Since(start).Nanoseconds()}
	if o.report == "" {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.report, b, 0o644); err != nil {
		return fmt.Errorf("write spew report: %w", err)
	}
	return nil
}
