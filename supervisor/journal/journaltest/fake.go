// Package journaltest is a fake journald for tests: a datagram socket in a
// temporary directory that decodes entries as journald does
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), datagrams and sealed
// memfds alike, and fails the test on anything journald would refuse.
package journaltest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Fields is one journal entry: field name to values.
type Fields map[string][]string

// Get is the field's one value, or a note that it has not exactly one.
func (f Fields) Get(name string) string {
	if len(f[name]) != 1 {
		return fmt.Sprintf("<%d values>", len(f[name]))
	}
	return f[name][0]
}

// Fake is a datagram socket in a temp dir that decodes what it
// receives as journald does (systemd.io/JOURNAL_NATIVE_PROTOCOL): entries
// in datagrams, or in a sealed memfd passed in an empty datagram.
type Fake struct {
	// Path is the socket to give the code under test.
	Path string
	conn *net.UnixConn
	more chan struct{} // signalled on each entry

	mu      sync.Mutex
	entries []Fields
	errs    []error
}

// NewFake listens; it reads only once read is called, so that a
// test can play a journald that has stopped reading.
func NewFake(t testing.TB) *Fake {
	t.Helper()
	f := &Fake{Path: filepath.Join(t.TempDir(), "journal.socket"), more: make(chan struct{}, 1)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	t.Cleanup(func() {
		conn.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, err := range f.errs {
			t.Errorf("fake journald: %v", err)
		}
	})
	return f
}

// Read starts reading; until then the fake plays a journald that has
// stopped reading.
func (f *Fake) Read() *Fake {
	go func() {
		buf := make([]byte, 1<<20)
		oob := make([]byte, unix.CmsgSpace(4))
		for {
			n, oobn, flags, _, err := f.conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			entry, err := decodeDatagram(buf[:n], oob[:oobn], flags)
			f.mu.Lock()
			if err != nil {
				f.errs = append(f.errs, err)
			} else {
				f.entries = append(f.entries, entry)
			}
			f.mu.Unlock()
			select {
			case f.more <- struct{}{}:
			default:
			}
		}
	}()
	return f
}

func decodeDatagram(b, oob []byte, flags int) (Fields, error) {
	if flags&unix.MSG_TRUNC != 0 {
		return nil, errors.New("datagram truncated")
	}
	if len(oob) == 0 {
		return DecodeEntry(b)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("datagram of %d bytes with an fd; journald wants it empty", len(b))
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control message: %v (%d)", err, len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("fds: %v (%d)", err, len(fds))
	}
	file := os.NewFile(uintptr(fds[0]), "entry")
	defer file.Close()
	// journald takes a memfd from anyone only when it is sealed.
	seals, err := unix.FcntlInt(file.Fd(), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if err != nil || seals != want {
		return nil, fmt.Errorf("memfd seals %#x (%v), want %#x", seals, err, want)
	}
	// The fd shares its file offset with the sender's, which is at the end:
	// read from 0, as journald does (it maps the file).
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.NewSectionReader(file, 0, st.Size()))
	if err != nil {
		return nil, err
	}
	return DecodeEntry(data)
}

// DecodeEntry parses as journald's server_process_native_message:
// a line up to '\n' is NAME=value; a line without '=' is a name followed
// by a 64-bit little-endian length, the value and a '\n'.
func DecodeEntry(b []byte) (Fields, error) {
	fields := Fields{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("field %.20q without newline", b)
		}
		line := b[:nl]
		var name, value []byte
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			name, value = line[:eq], line[eq+1:]
			b = b[nl+1:]
		} else {
			name, b = line, b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("field %s: short length", name)
			}
			n := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if uint64(len(b)) < n+1 || b[n] != '\n' {
				return nil, fmt.Errorf("field %s: bad binary value", name)
			}
			value, b = b[:n], b[n+1:]
		}
		if !ValidName(string(name)) {
			return nil, fmt.Errorf("field name %q is not valid for journald", name)
		}
		fields[string(name)] = append(fields[string(name)], string(value))
	}
	return fields, nil
}

// ValidName is journald's journal_field_valid for clients.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// All is every entry received so far.
func (f *Fake) All() []Fields {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Fields(nil), f.entries...)
}

// Wait returns the entries once there are n (it fails the test after
// 30 s, a hang guard).
func (f *Fake) Wait(t testing.TB, n int) []Fields {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if got := f.All(); len(got) >= n {
			return got
		}
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("fake journald got %d entries, want %d", len(f.All()), n)
		}
	}
}

// Discard makes the fake drain its socket as fast as it can without
// decoding or keeping anything: for benchmarks.
func (f *Fake) Discard() *Fake {
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.conn.Read(buf); err != nil {
				return
			}
		}
	}()
	return f
}
