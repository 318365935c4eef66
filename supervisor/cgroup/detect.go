package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotDelegated is wrapped by every error that means "no cgroup v2 subtree
// is ours here": the caller falls back to process-tree containment.
var ErrNotDelegated = errors.New("cgroup not delegated")

// Location is where our own cgroup lives.
type Location struct {
	// Dir is our cgroup's directory, with the root prefix Detect was given.
	Dir string
	// Mount is the cgroup2 mount point as mountinfo lists it
	// (/sys/fs/cgroup or /sys/fs/cgroup/unified).
	Mount string
	// Path is our cgroup as /proc/self/cgroup names it ("0::" line).
	Path string
	// Hybrid is true when cgroup v1 hierarchies are mounted too: the
	// controllers then belong to v1 and the v2 tree has none.
	Hybrid bool
}

// Detect finds our cgroup v2 directory from root/proc/self/cgroup and
// root/proc/self/mountinfo. root is "/" on a real system; tests pass a fake
// tree. Errors that mean "no cgroup v2 here" wrap ErrNotDelegated.
func Detect(root string) (Location, error) {
	selfCgroup := filepath.Join(root, "proc/self/cgroup")
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return Location{}, fmt.Errorf("read our cgroup: %w", err)
	}
	cgPath, ok := parseSelfCgroup(data)
	if !ok {
		return Location{}, fmt.Errorf("%w: %s has no cgroup v2 (0::) line: cgroup v1 only", ErrNotDelegated, selfCgroup)
	}
	mountinfo := filepath.Join(root, "proc/self/mountinfo")
	data, err = os.ReadFile(mountinfo)
	if err != nil {
		return Location{}, fmt.Errorf("read mounts: %w", err)
	}
	m, hybrid, ok := parseMountinfo(data)
	if !ok {
		return Location{}, fmt.Errorf("%w: no cgroup2 mount in %s", ErrNotDelegated, mountinfo)
	}
	rel, ok := underMountRoot(cgPath, m.root)
	if !ok {
		return Location{}, fmt.Errorf("%w: our cgroup %s is outside the cgroup2 mount at %s (root %s)", ErrNotDelegated, cgPath, m.point, m.root)
	}
	return Location{
		Dir:    filepath.Join(root, m.point, rel),
		Mount:  m.point,
		Path:   cgPath,
		Hybrid: hybrid,
	}, nil
}

// parseSelfCgroup returns the path of the unified hierarchy's line
// ("0::/system.slice/x.service"); v1 lines name a hierarchy id and
// controllers instead.
func parseSelfCgroup(data []byte) (string, bool) {
	for line := range bytes.Lines(data) {
		id, rest, ok := strings.Cut(strings.TrimRight(string(line), "\n"), ":")
		if !ok || id != "0" {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if ok && controllers == "" && strings.HasPrefix(p, "/") {
			return p, true
		}
	}
	return "", false
}

// mount is one line of mountinfo, the fields we use.
type mount struct {
	root, point, fstype string
}

// parseMountinfo picks the cgroup2 mount, preferring the standard places
// (a system may have more than one, e.g. a container runtime's own), and
// says whether v1 hierarchies are mounted beside it.
func parseMountinfo(data []byte) (m mount, hybrid, ok bool) {
	var found []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		mt, valid := parseMountLine(sc.Text())
		if !valid {
			continue
		}
		switch mt.fstype {
		case "cgroup":
			hybrid = true
		case "cgroup2":
			found = append(found, mt)
		}
	}
	for _, want := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		for _, mt := range found {
			if mt.point == want {
				return mt, hybrid, true
			}
		}
	}
	if len(found) > 0 {
		return found[0], hybrid, true
	}
	return mount{}, hybrid, false
}

// parseMountLine reads "id parent maj:min root point opts [optional...] -
// fstype source superopts" (proc(5)); the optional fields vary in number,
// so the filesystem type is found after the "-" separator.
func parseMountLine(line string) (mount, bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return mount{}, false
	}
	for i := 6; i < len(fields)-1; i++ {
		if fields[i] == "-" {
			return mount{
				root:   UnescapeMount(fields[3]),
				point:  UnescapeMount(fields[4]),
				fstype: fields[i+1],
			}, true
		}
	}
	return mount{}, false
}

// UnescapeMount undoes mountinfo's octal escapes (\040 for a space, \011,
// \012, \134), which keep its fields separable; a malformed escape is
// left as it is.
func UnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// underMountRoot maps our cgroup path to a path below the mount point. A
// mount of a sub-tree (a container's bind mount) has a root other than "/";
// both paths are relative to our cgroup namespace's root.
func underMountRoot(cgPath, mountRoot string) (string, bool) {
	if mountRoot == "/" {
		return cgPath, true
	}
	mountRoot = path.Clean(mountRoot)
	if cgPath == mountRoot {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(cgPath, mountRoot+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}
