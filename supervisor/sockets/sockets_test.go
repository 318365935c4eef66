package sockets

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// LISTEN_FDNAMES as systemd wrote it: an empty entry stays empty, so that
// workers see the same names drover got; unset means every fd "unknown".
func TestFDNames(t *testing.T) {
	for _, tc := range []struct {
		env  *string
		n    int
		want []string
	}{
		{nil, 2, []string{"unknown", "unknown"}},
		{ptr("web:admin"), 2, []string{"web", "admin"}},
		{ptr("web::x"), 3, []string{"web", "", "x"}},
		{ptr(""), 1, []string{""}},
	} {
		if tc.env == nil {
			t.Setenv("LISTEN_FDNAMES", "")
			os.Unsetenv("LISTEN_FDNAMES")
		} else {
			t.Setenv("LISTEN_FDNAMES", *tc.env)
		}
		got, err := fdNames(tc.n)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LISTEN_FDNAMES=%v n=%d: %q, %v; want %q", tc.env, tc.n, got, err, tc.want)
		}
	}
	t.Setenv("LISTEN_FDNAMES", "a:b")
	if _, err := fdNames(1); !errors.Is(err, ErrInvalid) {
		t.Errorf("2 names for 1 fd: %v, want ErrInvalid", err)
	}
}

func ptr(s string) *string { return &s }

func TestOpenAndParse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	var specs []ListenSpec
	for _, s := range []string{"web=127.0.0.1:0", "unix:" + sock} {
		spec, err := ParseListen(s)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	socks, err := Open(specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		defer s.Close()
		if s.Inode == 0 {
			t.Errorf("%s: no inode", s.Addr)
		}
	}
	if socks[0].Name != "web" || socks[1].Name != "unknown" || socks[1].Addr != "unix:"+sock {
		t.Errorf("sockets %+v", socks)
	}
	if c, err := net.Dial("tcp", socks[0].Addr); err != nil {
		t.Errorf("dial %s: %v", socks[0].Addr, err)
	} else {
		c.Close()
	}
	for _, bad := range []string{"x=y=1:2", "unix:rel", "host:1", "1.2.3.4:99999"} {
		if _, err := ParseListen(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseListen(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := RemoveStale(sock); err == nil {
		t.Error("RemoveStale removed a socket someone listens on")
	}
}
