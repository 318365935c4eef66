package cgroup

import (
	"os"
	"strings"
)

// Unit is the systemd unit this process runs in (myapp.service), read from
// its cgroup v2 path in /proc/self/cgroup: the innermost path element that
// names a service or scope, so drover's own leaf below it does not count.
// ok is false outside a unit.
func Unit() (string, bool) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	path, ok := parseSelfCgroup(data)
	if !ok {
		return "", false
	}
	return unitOf(path)
}

func unitOf(path string) (string, bool) {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if e := elems[i]; strings.HasSuffix(e, ".service") || strings.HasSuffix(e, ".scope") {
			return e, true
		}
	}
	return "", false
}
