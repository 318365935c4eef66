package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot writes a /proc/self/cgroup and /proc/self/mountinfo under a
// temporary root, as Detect reads them.
func fakeRoot(t *testing.T, selfCgroup, mountinfo string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/self"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"cgroup": selfCgroup, "mountinfo": mountinfo} {
		if err := os.WriteFile(filepath.Join(root, "proc/self", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Debian 13, systemd 257: everything on one cgroup2 mount.
const pureV2Mountinfo = `22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 28 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
`

// The lab's containers and this host: v1 controllers, systemd's own
// name=systemd v1 hierarchy, and a controller-less cgroup2 tree.
const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
`

const hybridSelfCgroup = `9:name=systemd:/system.slice/drover.service
8:pids:/system.slice/drover.service
4:memory:/system.slice/drover.service
1:cpu:/system.slice
0::/system.slice/drover.service
`

func TestDetectPureV2(t *testing.T) {
	root := fakeRoot(t, "0::/system.slice/drover.service\n", pureV2Mountinfo)
	loc, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Location{
		Dir:   filepath.Join(root, "/sys/fs/cgroup/system.slice/drover.service"),
		Mount: "/sys/fs/cgroup",
		Path:  "/system.slice/drover.service",
	}
	if loc != want {
		t.Errorf("Detect = %+v, want %+v", loc, want)
	}
}

func TestDetectHybrid(t *testing.T) {
	root := fakeRoot(t, hybridSelfCgroup, hybridMountinfo)
	loc, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Location{
		Dir:    filepath.Join(root, "/sys/fs/cgroup/unified/system.slice/drover.service"),
		Mount:  "/sys/fs/cgroup/unified",
		Path:   "/system.slice/drover.service",
		Hybrid: true,
	}
	if loc != want {
		t.Errorf("Detect = %+v, want %+v", loc, want)
	}
}

// cgroup v1 only (legacy mode): no 0:: line, no cgroup2 mount.
func TestDetectV1Only(t *testing.T) {
	v1Self := "9:name=systemd:/system.slice/drover.service\n8:pids:/system.slice/drover.service\n"
	v1Mounts := hybridMountinfo[:len(hybridMountinfo)-len("41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n")]
	for name, root := range map[string]string{
		"no 0:: line":        fakeRoot(t, v1Self, v1Mounts),
		"0:: but no cgroup2": fakeRoot(t, hybridSelfCgroup, v1Mounts),
	} {
		if _, err := Detect(root); !errors.Is(err, ErrNotDelegated) {
			t.Errorf("%s: Detect err = %v, want ErrNotDelegated", name, err)
		}
	}
}

// A container that sees a sub-tree mounted: its mount root is not "/".
func TestDetectMountRoot(t *testing.T) {
	mi := "41 31 0:38 /machine.slice/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	root := fakeRoot(t, "0::/machine.slice/c1/app.service\n", mi)
	loc, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "/sys/fs/cgroup/app.service"); loc.Dir != want {
		t.Errorf("Dir = %s, want %s", loc.Dir, want)
	}
	root = fakeRoot(t, "0::/other/app.service\n", mi)
	if _, err := Detect(root); !errors.Is(err, ErrNotDelegated) {
		t.Errorf("cgroup outside the mount: err = %v, want ErrNotDelegated", err)
	}
}

// A cgroup2 mount elsewhere is used when the standard places have none;
// mountinfo escapes spaces.
func TestDetectOddMount(t *testing.T) {
	mi := "41 31 0:38 / /run/my\\040cgroups rw,relatime shared:1 master:2 - cgroup2 none rw\n"
	root := fakeRoot(t, "0::/a\n", mi)
	loc, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Mount != "/run/my cgroups" || loc.Dir != filepath.Join(root, "/run/my cgroups/a") {
		t.Errorf("Detect = %+v", loc)
	}
}

func TestParseSelfCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"0::/\n":               "/",
		"1:cpu:/x\n0::/a:b\n":  "/a:b",
		"0::/no/newline":       "/no/newline",
		"2::/x\n":              "",
		"0:cpu:/x\n":           "",
		"garbage\n0::relative": "",
	} {
		got, ok := parseSelfCgroup([]byte(in))
		if got != want || ok != (want != "") {
			t.Errorf("parseSelfCgroup(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte(hybridMountinfo))
	f.Add([]byte(pureV2Mountinfo))
	f.Add([]byte("1 2 3:4 / /x\\ rw - cgroup2 a b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseMountinfo(data)
		parseSelfCgroup(data)
	})
}
