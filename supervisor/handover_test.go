package supervisor

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The state goes through its memfd unchanged, and a format this drover
// does not read is refused with what it reads.
func TestHandoverRoundTrip(t *testing.T) {
	h := &handover{Format: HandoverFormat, Version: "v1", Started: time.Unix(100, 0).UTC(),
		Sockets:    []handoverSocket{{FD: 3, Name: "web", Addr: "127.0.0.1:80"}},
		Generation: handoverGen{Number: 4, Path: "/usr/bin/myapp", FD: 9, Link: "/run/x/4/myapp"},
		Slots:      []handoverSlot{{ID: 1, Restarts: 2, Worker: handoverWorker{Pid: 42, Stdout: -1, Stderr: 11, Status: "warm", Streams: []int{12, 13}}}},
		Restarts:   2, ReloadFailure: "reload failed: x"}
	f, err := writeHandover(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readHandover(f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "v1" || !got.Started.Equal(h.Started) || got.Generation != h.Generation || !reflect.DeepEqual(got.Slots[0].Worker, h.Slots[0].Worker) ||
		got.Sockets[0] != h.Sockets[0] || got.ReloadFailure != h.ReloadFailure {
		t.Errorf("round trip: %+v, want %+v", got, h)
	}

	h.Format = 99
	f, err = writeHandover(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readHandover(f); err == nil || !strings.Contains(err.Error(), "format 99; this drover reads [1]") {
		t.Errorf("format 99: %v", err)
	}
	bad, _ := os.CreateTemp(t.TempDir(), "state")
	bad.WriteString("{not json")
	bad.Seek(0, 0)
	if _, err := readHandover(bad); err == nil {
		t.Error("a corrupt state was read")
	}
}
