package notify

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func FuzzParseNotify(f *testing.F) {
	for _, seed := range []string{"READY=1", "READY=1\nSTATUS=ok", "=x\n\n", "STATUS=a=b", "\x00READY=1"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range Parse(b) {
			if k == "" || strings.Contains(k, "\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

// A datagram from another user is dropped before Read returns: only
// drover's own uid (its workers) reaches the loop.
func TestListenerDropsOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to send as another user")
	}
	l, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	name := strings.TrimPrefix(l.Addr, "@")
	send := func(msg string, cred *syscall.Credential) {
		t.Helper()
		cmd := exec.Command("/usr/bin/python3", "-c", `import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), "\0" + sys.argv[1])`, name, msg)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("send %q: %v\n%s", msg, err, out)
		}
	}
	got := make(chan Message, 1)
	go func() {
		msg, err := l.Read()
		if err != nil {
			t.Error(err)
		}
		got <- msg
	}()
	// More than the socket's queue holds: the reader drains them.
	for range 50 {
		send("READY=1\nSTATUS=stranger", &syscall.Credential{Uid: 65534, Gid: 65534})
	}
	send("STATUS=ours", nil)
	msg := <-got
	if msg.Fields["STATUS"] != "ours" || msg.Pid <= 0 {
		t.Errorf("Read = %+v, want our own datagram first", msg)
	}
}
