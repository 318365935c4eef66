package control

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

const waitLimit = 30 * time.Second

func serve(t *testing.T, h Handler) (*Server, string, chan struct{}, *logtest.Hook) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	log, hook := logtest.NewNullLogger()
	s, err := Listen(path, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(h); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s, path, done, hook
}

func ok(Request) Response { return Response{OK: true} }

// After a brush with the fd limit the control socket still answers: the
// accept loop waits a moment and goes on instead of ending.
func TestServeSurvivesFdExhaustion(t *testing.T) {
	_, path, _, hook := serve(t, ok)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(entries) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 40 {
		// Connects succeed in the kernel's backlog while accept fails.
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(waitLimit)
	for !logged(hook, "control socket: accept failed; retrying") {
		if time.Now().After(deadline) {
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
			t.Fatal("accept never failed: the fd limit was not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	resp, err := Call(path, Request{Command: "status"}, waitLimit)
	if err != nil || !resp.OK {
		t.Fatalf("after fd pressure: %+v, %v", resp, err)
	}
}

func logged(h *logtest.Hook, msg string) bool {
	for _, e := range h.AllEntries() {
		if e.Message == msg && e.Level == logrus.WarnLevel {
			return true
		}
	}
	return false
}

// A client that never reads its (large) answer does not keep the server
// from closing: Close ends every connection.
func TestCloseDoesNotWaitForAClient(t *testing.T) {
	big := Response{Error: strings.Repeat("x", 4<<20)}
	called := make(chan struct{})
	s, path, done, _ := serve(t, func(Request) Response { close(called); return big })
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"command":"status"}` + "\n"))
	<-called
	s.Close()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return with a client that reads nothing")
	}
}

// A drover that never answers is a clear error within the deadline.
func TestCallDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Call(path, Request{Command: "status"}, 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("Call = %v, want a deadline error that says so", err)
	}
}
