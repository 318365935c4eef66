package sockets

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// Activation variables meant for another process (LISTEN_PID unset, empty
// or another pid: a parent leaked them) mean "not socket-activated", as for
// sd_listen_fds(3), and are removed so that no worker sees them. Only a
// LISTEN_PID that is no number, or a malformed environment meant for this
// process, is an error.
func TestFromSystemdEnvironment(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	unset := "(unset)"
	for _, tc := range []struct {
		name          string
		pid, fds, fdn string
		wantErr       string // "" means not activated, no error
	}{
		{"stale LISTEN_FDS alone", unset, "2", unset, ""},
		{"empty LISTEN_PID", "", "2", "a:b", ""},
		{"another process's", "1", "2", "a:b", ""},
		{"names alone", unset, unset, "web", ""},
		{"LISTEN_PID not a number", "abc", "2", unset, `LISTEN_PID="abc" is not a pid`},
		{"ours, LISTEN_FDS malformed", self, "abc", unset, `LISTEN_FDS="abc"`},
		{"ours, LISTEN_FDS empty", self, "", unset, `LISTEN_FDS=""`},
		{"ours, LISTEN_FDS unset", self, unset, unset, `LISTEN_FDS=""`},
		{"ours, names do not match", self, "1", "a:b", "has 2 names for LISTEN_FDS=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{"LISTEN_PID": tc.pid, "LISTEN_FDS": tc.fds, "LISTEN_FDNAMES": tc.fdn} {
				t.Setenv(k, v) // restored after the test, also when unset below
				if v == unset {
					os.Unsetenv(k)
				}
			}
			socks, ok, err := FromSystemd()
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromSystemd() = %v, want ErrInvalid with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok || socks != nil {
				t.Fatalf("FromSystemd() = %v, %v, %v; want not activated", socks, ok, err)
			}
			for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
				if v, set := os.LookupEnv(k); set {
					t.Errorf("%s=%q still set: workers would see it", k, v)
				}
			}
		})
	}
}
