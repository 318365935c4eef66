package cgroup

import "testing"

func TestUnitOf(t *testing.T) {
	for path, want := range map[string]string{
		"/system.slice/myapp.service/supervisor":       "myapp.service",
		"/system.slice/myapp.service":                  "myapp.service",
		"/user.slice/user-0.slice/session-3.scope":     "session-3.scope",
		"/system.slice/a.service/worker-0-1/x.service": "x.service",
		"/":               "",
		"/init.scope/../": "init.scope",
	} {
		if got, ok := unitOf(path); got != want || ok != (want != "") {
			t.Errorf("unitOf(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
}
