package cpus

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

// Mount lines as a hybrid host (this one) and a pure v2 host write them.
const (
	miV1CPU     = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	miV1Acct    = "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	miV1CPUAcct = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
	miUnified   = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	miV2        = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)

func TestCPULimitFromFakeCgroups(t *testing.T) {
	const v1 = "sys/fs/cgroup/cpu/"
	const v2 = "sys/fs/cgroup/"
	for _, tc := range []struct {
		name  string
		files map[string]string // under the fake "/"; a name ending in / is a directory
		want  int               // 0: no limit
	}{
		{"v2 max", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/system.slice/drover.service\n",
			v2 + "system.slice/drover.service/cpu.max": "max 100000\n",
		}, 0},
		{"v2 150% floors to 1", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/system.slice/drover.service\n",
			v2 + "system.slice/drover.service/cpu.max": "150000 100000\n",
		}, 1},
		{"v2 200% of a 16-core box", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/system.slice/drover.service\n",
			v2 + "system.slice/drover.service/cpu.max": "200000 100000\n",
		}, 2},
		{"v2 50% is still 1", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/a\n", v2 + "a/cpu.max": "50000 100000\n",
		}, 1},
		{"v2 quota on the parent slice", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/drover.slice/drover.service\n",
			v2 + "drover.slice/cpu.max":                "300000 100000\n",
			v2 + "drover.slice/drover.service/cpu.max": "max 100000\n",
		}, 3},
		{"v2 smallest along the path", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/a/b/c\n",
			v2 + "a/cpu.max": "600000 100000\n", v2 + "a/b/cpu.max": "200000 50000\n", v2 + "a/b/c/cpu.max": "max 100000\n",
		}, 4},
		{"v2 in a cgroup namespace", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/\n", v2 + "cpu.max": "200000 100000\n",
		}, 2},
		{"v2 container mount of its own cgroup", map[string]string{
			"proc/self/mountinfo": "50 40 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":    "0::/docker/abc/app\n",
			v2 + "cpu.max":        "100000 100000\n", v2 + "app/cpu.max": "max 100000\n",
		}, 1},
		{"v2 outside the namespace root is invisible", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/../other\n", v2 + "other/cpu.max": "100000 100000\n",
		}, 0},
		{"v2 not under the mount root", map[string]string{
			"proc/self/mountinfo": "50 40 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":    "0::/docker/abcd\n", v2 + "cpu.max": "100000 100000\n",
		}, 0},
		{"v1 quota", map[string]string{
			"proc/self/mountinfo": miV1CPU + miV1Acct + miUnified, "proc/self/cgroup": "2:cpuacct:/\n1:cpu:/g\n0::/\n",
			v1 + "g/cpu.cfs_quota_us": "50000\n", v1 + "g/cpu.cfs_period_us": "100000\n",
		}, 1},
		{"v1 -1 is no limit", map[string]string{
			"proc/self/mountinfo": miV1CPU, "proc/self/cgroup": "1:cpu:/g\n",
			v1 + "g/cpu.cfs_quota_us": "-1\n", v1 + "g/cpu.cfs_period_us": "100000\n",
		}, 0},
		{"v1 co-mounted with cpuacct", map[string]string{
			"proc/self/mountinfo": miV1CPUAcct, "proc/self/cgroup": "12:pids:/x\n4:cpu,cpuacct:/user.slice\n",
			"sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us":  "250000",
			"sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_period_us": "100000",
		}, 2},
		{"v1 quota on the parent only", map[string]string{
			"proc/self/mountinfo": miV1CPU, "proc/self/cgroup": "1:cpu:/p/c\n",
			v1 + "cpu.cfs_quota_us": "-1\n", v1 + "cpu.cfs_period_us": "100000\n",
			v1 + "p/cpu.cfs_quota_us": "200000\n", v1 + "p/cpu.cfs_period_us": "100000\n",
			v1 + "p/c/cpu.cfs_quota_us": "-1\n", v1 + "p/c/cpu.cfs_period_us": "100000\n",
		}, 2},
		{"v1 container mount, walk stops at the mount", map[string]string{
			"proc/self/mountinfo":   "60 50 0:29 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n",
			"proc/self/cgroup":      "1:cpu:/docker/abc/sub\n",
			v1 + "cpu.cfs_quota_us": "300000", v1 + "cpu.cfs_period_us": "100000",
			v1 + "sub/cpu.cfs_quota_us": "-1", v1 + "sub/cpu.cfs_period_us": "100000",
		}, 3},
		{"v1 of two mounts, the one that shows more ancestors", map[string]string{
			"proc/self/mountinfo":   "70 50 0:29 /p /mnt/p rw - cgroup cgroup rw,cpu\n" + miV1CPU,
			"proc/self/cgroup":      "1:cpu:/p/c\n",
			v1 + "cpu.cfs_quota_us": "-1", v1 + "cpu.cfs_period_us": "100000",
			v1 + "p/cpu.cfs_quota_us": "100000", v1 + "p/cpu.cfs_period_us": "100000",
		}, 1},
		{"cpuacct and cpuset are not cpu", map[string]string{
			"proc/self/mountinfo": miV1Acct, "proc/self/cgroup": "2:cpuacct:/g\n3:cpuset:/g\n",
			"sys/fs/cgroup/cpuacct/g/cpu.cfs_quota_us": "100000", "sys/fs/cgroup/cpuacct/g/cpu.cfs_period_us": "100000",
		}, 0},
		{"hybrid: v1 holds cpu, v2 has no cpu.max", map[string]string{
			"proc/self/mountinfo": miV1CPU + miUnified, "proc/self/cgroup": "1:cpu:/g\n0::/g\n",
			v1 + "g/cpu.cfs_quota_us": "200000", v1 + "g/cpu.cfs_period_us": "100000",
			"sys/fs/cgroup/unified/g/": "",
		}, 2},
		{"escaped mount point", map[string]string{
			"proc/self/mountinfo": `29 23 0:26 / /sys/fs/cgroup\040v2 rw - cgroup2 cgroup2 rw` + "\n",
			"proc/self/cgroup":    "0::/a\n", "sys/fs/cgroup v2/a/cpu.max": "100000 100000",
		}, 1},
		{"a later mount hides an earlier one", map[string]string{
			"proc/self/mountinfo": miV2 + "30 23 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
				"31 30 0:28 /x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup": "0::/x/a\n", v2 + "a/cpu.max": "100000 100000", v2 + "x/a/cpu.max": "300000 100000",
		}, 1},
		{"a tmpfs over a cgroup mount hides it", map[string]string{
			"proc/self/mountinfo": miV2 + "30 23 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n",
			"proc/self/cgroup":    "0::/a\n", v2 + "a/cpu.max": "100000 100000",
		}, 0},
		{"no mountinfo", map[string]string{"proc/self/cgroup": "0::/a\n", v2 + "a/cpu.max": "100000 100000"}, 0},
		{"no /proc/self/cgroup", map[string]string{"proc/self/mountinfo": miV2, v2 + "cpu.max": "100000 100000"}, 0},
		{"garbage everywhere", map[string]string{
			"proc/self/mountinfo": "garbage\n1 2 3\n- - -\n\n29 23 0:26 / /sys/fs/cgroup rw - cgroup2\n" + miV1CPU,
			"proc/self/cgroup":    "::::\nnonsense\n1:cpu:relative/path\n0::/a\n",
			v2 + "a/cpu.max":      "banana 100000", v2 + "cpu.max": "100000 0",
		}, 0},
		{"garbage v1 files", map[string]string{
			"proc/self/mountinfo": miV1CPU, "proc/self/cgroup": "1:cpu:/a/b/c/d\n",
			v1 + "a/b/c/d/cpu.cfs_quota_us": "12abc", v1 + "a/b/c/d/cpu.cfs_period_us": "100000",
			v1 + "a/b/c/cpu.cfs_quota_us": "100000", v1 + "a/b/c/cpu.cfs_period_us": "",
			v1 + "a/b/cpu.cfs_quota_us/": "", v1 + "a/b/cpu.cfs_period_us": "100000",
			v1 + "a/cpu.cfs_quota_us": "0", v1 + "a/cpu.cfs_period_us": "100000",
		}, 0},
		{"unreadable cpu.max (a directory) and an empty one", map[string]string{
			"proc/self/mountinfo": miV2, "proc/self/cgroup": "0::/a/b\n",
			v2 + "a/b/cpu.max/": "", v2 + "a/cpu.max": "",
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cgroupCPULimit(fakeRoot(t, tc.files))
			if !ok {
				got = 0
			} else if got < 1 {
				t.Fatalf("limit %d, want at least 1 when there is one", got)
			}
			if got != tc.want {
				t.Errorf("limit = %d (found %v), want %d", got, ok, tc.want)
			}
		})
	}
}

// fakeRoot lays files out in a temp dir and returns it as the fake "/", so
// the code reads them through the same os.DirFS it uses in production.
func fakeRoot(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

func FuzzCPULimitParsing(f *testing.F) {
	f.Add(miV1CPU+miUnified, "1:cpu:/g\n0::/g\n", "50000", "100000 100000")
	f.Add(miV2, "0::/\n", "-1", "max 100000")
	f.Add(`1 2 3:4 /\134x /sys/fs/cgroup\040 o - cgroup2 c r`, "0::/../x", "", "9223372036854775807 1")
	f.Fuzz(func(t *testing.T, mountinfo, procCgroup, quota, cpuMax string) {
		fsys := fstest.MapFS{
			"proc/self/mountinfo":                   {Data: []byte(mountinfo)},
			"proc/self/cgroup":                      {Data: []byte(procCgroup)},
			"sys/fs/cgroup/cpu/g/cpu.cfs_quota_us":  {Data: []byte(quota)},
			"sys/fs/cgroup/cpu/g/cpu.cfs_period_us": {Data: []byte("100000")},
			"sys/fs/cgroup/unified/g/cpu.max":       {Data: []byte(cpuMax)},
			"sys/fs/cgroup/cpu.max":                 {Data: []byte(cpuMax)},
		}
		if n, ok := cgroupCPULimit(fsys); ok && n < 1 {
			t.Fatalf("limit %d", n)
		}
	})
}

func TestUsableCPUsInThisProcess(t *testing.T) {
	n, err := Usable()
	if err != nil {
		t.Fatal(err)
	}
	if aff := affinityCount(t); n < 1 || n > aff {
		t.Fatalf("Usable() = %d, want 1..%d (the affinity mask)", n, aff)
	}
}

// TestUsableCPUsAffinity starts a helper as `taskset -c <one cpu>` would,
// so every thread of it has a one-CPU mask.
func TestUsableCPUsAffinity(t *testing.T) {
	if got := runCPUHelper(t, "", firstCPU(t)); got != 1 {
		t.Fatalf("Usable() under a one-CPU affinity = %d, want 1", got)
	}
}

// TestUsableCPUsRealCgroupV1 and V2 put a helper process into real cgroups,
// because a fake tree only shows what its author believed about the kernel.
// The groups are made at the top of the hierarchy, so the expectations
// assume no quota above the mount itself.
func TestUsableCPUsRealCgroupV1(t *testing.T) { testRealCgroup(t, false) }
func TestUsableCPUsRealCgroupV2(t *testing.T) { testRealCgroup(t, true) }

func testRealCgroup(t *testing.T, v2 bool) {
	mount := realCPUHierarchy(t, v2)
	setQuota := func(dir string, quota int64) {
		t.Helper()
		if v2 {
			q := "max"
			if quota > 0 {
				q = strconv.FormatInt(quota, 10)
			}
			writeCgroupFile(t, dir, "cpu.max", q+" 100000")
			return
		}
		writeCgroupFile(t, dir, "cpu.cfs_period_us", "100000")
		writeCgroupFile(t, dir, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
	}
	two := min(2, affinityCount(t))

	g := makeCgroup(t, mount, "")
	setQuota(g, 50000)
	if got := runCPUHelper(t, g, nil); got != 1 {
		t.Errorf("quota 50000/100000: Usable() = %d, want 1", got)
	}
	setQuota(g, 200000)
	if got := runCPUHelper(t, g, nil); got != two {
		t.Errorf("quota 200000/100000: Usable() = %d, want %d", got, two)
	}
	if got := runCPUHelper(t, g, firstCPU(t)); got != 1 {
		t.Errorf("quota 200000/100000 and a one-CPU affinity: Usable() = %d, want 1", got)
	}

	// 150% on the parent, nothing on the child: the parent's quota applies,
	// and floors to 1 where the runtime's GOMAXPROCS would say 2.
	parent := makeCgroup(t, mount, "")
	setQuota(parent, 150000)
	if v2 {
		writeCgroupFile(t, parent, "cgroup.subtree_control", "+cpu")
	}
	child := makeCgroup(t, parent, "child")
	setQuota(child, -1)
	if got := runCPUHelper(t, child, nil); got != 1 {
		t.Errorf("quota 150000/100000 on the parent only: Usable() = %d, want 1", got)
	}
}

// realCPUHierarchy returns the mount point of the hierarchy that holds the
// cpu controller, or skips the test.
func realCPUHierarchy(t *testing.T, v2 bool) string {
	t.Helper()
	version := map[bool]string{false: "v1", true: "v2"}[v2]
	if os.Geteuid() != 0 {
		t.Skipf("creating cgroup %s groups needs root", version)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mount := ""
	for _, m := range parseCgroupMounts(string(mi)) {
		if m.v2 == v2 && (mount == "" || m.root == "/") {
			mount = path.Join("/", m.point)
		}
	}
	if mount == "" {
		t.Skipf("no cgroup %s hierarchy with the cpu controller is mounted", version)
	}
	if v2 {
		ctl, err := os.ReadFile(filepath.Join(mount, "cgroup.subtree_control"))
		if err != nil || !slices.Contains(strings.Fields(string(ctl)), "cpu") {
			t.Skipf("the cgroup v2 hierarchy at %s has no cpu controller for its groups (here it is on v1); the fake trees cover v2", mount)
		}
	} else if _, err := os.Stat(filepath.Join(mount, "cpu.cfs_quota_us")); err != nil {
		t.Skipf("cgroup v1 cpu at %s has no CFS bandwidth control: %v", mount, err)
	}
	return mount
}

// makeCgroup creates a group under parent (a random name when name is "")
// and removes it in Cleanup, after the helpers in it have exited: Cleanup
// runs last-registered first, and runCPUHelper registers its wait later.
func makeCgroup(t *testing.T, parent, name string) string {
	t.Helper()
	if name == "" {
		name = fmt.Sprintf("drover-test-%d-%x", os.Getpid(), rand.Uint64())
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, syscall.EROFS) {
			t.Skipf("cannot create cgroups here: %v", err)
		}
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Only helpers started by this test can be in it, and they have
		// been waited for; a group whose last task just exited may still
		// report busy for a moment.
		deadline := time.Now().Add(waitLimit)
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				return
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				t.Errorf("remove cgroup %s: %v (processes: %q)", dir, err, procs)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir
}

func writeCgroupFile(t *testing.T, dir, name, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

func affinityCount(t *testing.T) int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	return set.Count()
}

// firstCPU is a mask of the lowest CPU this process may use.
func firstCPU(t *testing.T) *unix.CPUSet {
	t.Helper()
	var set, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < len(set)*64; cpu++ {
		if set.IsSet(cpu) {
			one.Set(cpu)
			return &one
		}
	}
	t.Fatal("empty affinity mask")
	return nil
}

const cpuHelperEnv = "DROVER_TEST_CPU_HELPER"

// cpuHelperMode, called from TestMain, makes the test binary a helper that
// waits for a line on stdin (the parent moves it into its cgroup first),
// then prints Usable() on stdout and its cgroups on stderr.
func cpuHelperMode() (int, bool) {
	if os.Getenv(cpuHelperEnv) != "1" {
		return 0, false
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "cpu helper: wait for the parent:", err)
		return 2, true
	}
	n, err := Usable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu helper:", err)
		return 1, true
	}
	fmt.Println(n)
	cg, _ := os.ReadFile("/proc/self/cgroup")
	os.Stderr.Write(cg)
	return 0, true
}

// runCPUHelper runs the test binary as a cpu helper, in cgroup dir unless
// it is "", with the affinity cpus unless it is nil, and returns what the
// helper counted.
func runCPUHelper(t *testing.T, dir string, cpus *unix.CPUSet) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), cpuHelperEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startWithAffinity(cmd, cpus); err != nil {
		t.Fatalf("start cpu helper: %v", err)
	}
	waited := false
	t.Cleanup(func() {
		// Leave no helper behind in a cgroup that is about to be removed.
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if dir != "" {
		writeCgroupFile(t, dir, "cgroup.procs", strconv.Itoa(cmd.Process.Pid))
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatalf("release cpu helper: %v", err)
	}
	stdin.Close()
	err = cmd.Wait()
	waited = true
	if err != nil {
		t.Fatalf("cpu helper: %v\n%s", err, &stderr)
	}
	n, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("cpu helper printed %q: %v", &stdout, err)
	}
	t.Logf("helper in cgroups %q counted %d", strings.Join(strings.Fields(stderr.String()), " "), n)
	return n
}

// startWithAffinity starts cmd from a thread whose affinity is cpus, as
// taskset does: a forked child inherits the forking thread's mask, and so
// do all the threads the child's runtime creates. The thread is never
// unlocked, so the runtime retires it instead of reusing its narrowed mask.
func startWithAffinity(cmd *exec.Cmd, cpus *unix.CPUSet) error {
	if cpus == nil {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.SchedSetaffinity(0, cpus); err != nil {
			errc <- fmt.Errorf("set affinity: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func TestMain(m *testing.M) {
	if code, ok := cpuHelperMode(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// waitLimit bounds waits for helper processes: a hang guard, not a timing
// assertion.
const waitLimit = 30 * time.Second
