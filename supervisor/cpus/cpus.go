package cpus

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/droverd/drover/supervisor/cgroup"
	"golang.org/x/sys/unix"
)

// Usable returns how many CPUs this process may use: the CPUs in its
// affinity mask (taskset, systemd's AllowedCPUs= and cpuset cgroups all
// show up there, because the kernel narrows the mask to the cpuset),
// further limited by any cgroup CPU bandwidth quota on its cgroup or an
// ancestor of it, cgroup v1 or v2. The result is at least 1.
//
// A quota of Q CPUs counts as floor(Q), not ceil(Q): workers are CPU-bound,
// and running more of them than the quota allows makes the kernel throttle
// all of them in every period, which costs latency and gains no throughput.
// So 150% gives 1 worker and 200% gives 2; below 100% still gives 1, since
// drover needs a worker at all.
//
// Only a failed affinity call is an error. Cgroup files that are missing,
// unreadable or malformed count as "no quota": a quota is a limit drover
// honours when it can see one, never a reason not to start.
//
// Neither runtime.GOMAXPROCS nor go.uber.org/automaxprocs serves here. The
// runtime reads the same quota (and keeps cpu.cfs_quota_us open to follow
// it), but it rounds up, never goes below 2, and is overridden by the
// GOMAXPROCS variable meant for drover's own runtime. automaxprocs keeps its
// cgroup parsing internal and only sets GOMAXPROCS. The parsing is small, so
// it is written here, against a file system the tests can fake.
func Usable() (int, error) {
	var set unix.CPUSet
	// Pid 0 is the calling thread; every thread of drover inherits the mask
	// it was started with, so any thread answers for the process.
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, fmt.Errorf("read cpu affinity of pid %d: %w", os.Getpid(), err)
	}
	n := max(set.Count(), 1)
	if limit, ok := cgroupCPULimit(os.DirFS("/")); ok && limit < n {
		n = limit
	}
	return n, nil
}

// cgroupCPULimit returns the number of whole CPUs the cgroup CPU quotas of
// the calling process allow (at least 1), and false when no quota applies or
// none could be read. fsys is a view of "/": it holds proc/self/mountinfo,
// proc/self/cgroup and the cgroup mounts named in mountinfo.
//
// Hybrid hosts have both a v1 and a v2 hierarchy; the cpu controller is
// attached to at most one of them and the other simply has no quota files,
// so both are walked and the smaller limit wins.
func cgroupCPULimit(fsys fs.FS) (int, bool) {
	procCgroup, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	mountinfo, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return 0, false
	}
	v1Path, v2Path := parseProcCgroup(string(procCgroup))
	mounts := parseCgroupMounts(string(mountinfo))

	best, found := int64(0), false
	consider := func(limit int64, ok bool) {
		if ok && (!found || limit < best) {
			best, found = limit, true
		}
	}
	if v1Path != "" {
		if dir, top, ok := cgroupDir(mounts, false, v1Path); ok {
			consider(walkCgroupLimit(fsys, dir, top, readV1Quota))
		}
	}
	if v2Path != "" {
		if dir, top, ok := cgroupDir(mounts, true, v2Path); ok {
			consider(walkCgroupLimit(fsys, dir, top, readV2Quota))
		}
	}
	if !found {
		return 0, false
	}
	// A limit beyond int (a 32-bit build and an absurd quota) is no limit.
	if best > int64(^uint(0)>>1) {
		return 0, false
	}
	return int(best), true
}

// parseProcCgroup finds the process's cgroup in the v1 hierarchy that has
// the cpu controller ("4:cpu,cpuacct:/a/b") and in the v2 hierarchy
// ("0::/a/b"); "" for a hierarchy the process is not in.
func parseProcCgroup(s string) (v1, v2 string) {
	for line := range strings.SplitSeq(s, "\n") {
		// The path may itself hold colons, so split at the first two.
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			continue
		}
		id, controllers, p := fields[0], fields[1], fields[2]
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case hasItem(controllers, "cpu"):
			v1 = p
		}
	}
	return v1, v2
}

// cgroupMount is one cgroup file system mount from mountinfo.
type cgroupMount struct {
	v2    bool
	root  string // the cgroup at the mount's top, as /proc/self/cgroup names it
	point string // where it is mounted, as an fs.FS path ("sys/fs/cgroup/cpu")
}

// parseCgroupMounts returns the cgroup2 mounts and the v1 mounts of the
// hierarchy with the cpu controller. A later mount on the same mount point
// hides an earlier one, so only a cgroup mount that is still visible there
// is kept.
func parseCgroupMounts(s string) []cgroupMount {
	var mounts []cgroupMount
	for line := range strings.SplitSeq(s, "\n") {
		// id parent major:minor root point options [optional...] - fstype source superoptions
		fields := strings.Fields(line)
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) {
			continue
		}
		fstype, superOpts := fields[sep+1], ""
		if len(fields) > sep+3 {
			superOpts = fields[sep+3]
		}
		point := cgroup.UnescapeMount(fields[4])
		if !path.IsAbs(point) {
			continue
		}
		point = strings.TrimPrefix(path.Clean(point), "/")
		if point == "" {
			point = "."
		}
		// Whatever is mounted here now, cgroup or not, hides what was.
		mounts = slices.DeleteFunc(mounts, func(old cgroupMount) bool { return old.point == point })
		m := cgroupMount{root: cgroup.UnescapeMount(fields[3]), point: point}
		switch {
		case fstype == "cgroup2":
			m.v2 = true
		case fstype == "cgroup" && hasItem(superOpts, "cpu"):
		default:
			continue
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// cgroupDir maps the process's cgroup path to its directory under a mount
// of that hierarchy, and returns the mount point as the top of the walk.
// Of several mounts it takes the one whose root is highest up, so the walk
// sees the most ancestors. In a cgroup namespace a process outside the
// namespace's root sees "/.." in its path: its cgroup is not visible, so
// there is no directory to read.
func cgroupDir(mounts []cgroupMount, v2 bool, cgPath string) (dir, top string, ok bool) {
	if !path.IsAbs(cgPath) || slices.Contains(strings.Split(cgPath, "/"), "..") {
		return "", "", false
	}
	cgPath = path.Clean(cgPath)
	bestRoot := ""
	for _, m := range mounts {
		if m.v2 != v2 {
			continue
		}
		root := path.Clean(m.root)
		rel, under := relUnder(cgPath, root)
		if !under || (ok && len(root) >= len(bestRoot)) {
			continue
		}
		bestRoot, top, ok = root, m.point, true
		dir = path.Join(m.point, rel)
	}
	return dir, top, ok
}

// relUnder returns p relative to root when p is root or below it.
func relUnder(p, root string) (string, bool) {
	if root == "/" {
		return strings.TrimPrefix(p, "/"), true
	}
	if p == root {
		return "", true
	}
	if rest, found := strings.CutPrefix(p, root+"/"); found {
		return rest, true
	}
	return "", false
}

// walkCgroupLimit reads the quota of dir and of each ancestor up to top and
// returns the smallest. The kernel throttles a cgroup by the quotas of all
// its ancestors too, so a CPUQuota= on a parent slice limits drover as much
// as one on its own unit.
func walkCgroupLimit(fsys fs.FS, dir, top string, read func(fs.FS, string) (int64, bool)) (int64, bool) {
	best, found := int64(0), false
	for {
		if limit, ok := read(fsys, dir); ok && (!found || limit < best) {
			best, found = limit, true
		}
		if dir == top || dir == "." {
			return best, found
		}
		dir = path.Dir(dir)
	}
}

// readV1Quota reads cpu.cfs_quota_us (-1 means unlimited) and
// cpu.cfs_period_us of a cgroup v1 cpu directory.
func readV1Quota(fsys fs.FS, dir string) (int64, bool) {
	quota, ok := readInt(fsys, path.Join(dir, "cpu.cfs_quota_us"))
	if !ok {
		return 0, false
	}
	period, ok := readInt(fsys, path.Join(dir, "cpu.cfs_period_us"))
	if !ok {
		return 0, false
	}
	return quotaCPUs(quota, period)
}

// readV2Quota reads cpu.max, "$MAX $PERIOD", where $MAX is "max" for no
// limit.
func readV2Quota(fsys fs.FS, dir string) (int64, bool) {
	b, err := fs.ReadFile(fsys, path.Join(dir, "cpu.max"))
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 || fields[0] == "max" {
		return 0, false
	}
	quota, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, false
	}
	period, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return quotaCPUs(quota, period)
}

// quotaCPUs is floor(quota/period), at least 1 (see Usable for why
// floor); a negative quota (v1's -1) or a nonsensical period is no limit.
func quotaCPUs(quota, period int64) (int64, bool) {
	if quota <= 0 || period <= 0 {
		return 0, false
	}
	return max(quota/period, 1), true
}

func readInt(fsys fs.FS, name string) (int64, bool) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// hasItem reports whether a comma-separated list holds item exactly, so
// "cpu" does not match "cpuacct" or "cpuset".
func hasItem(list, item string) bool {
	for it := range strings.SplitSeq(list, ",") {
		if it == item {
			return true
		}
	}
	return false
}
