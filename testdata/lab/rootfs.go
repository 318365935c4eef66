package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/droverd/drover/supervisor/cgroup"
	"golang.org/x/sys/unix"
)

// Distro is one Debian release the lab boots.
type Distro struct {
	Name    string // debootstrap suite
	Systemd int    // the systemd major version it ships
}

// Distros are booted in this order in every run.
var Distros = []Distro{
	{Name: "bookworm", Systemd: 252},
	{Name: "trixie", Systemd: 257},
}

// DistroByName returns the distro called name.
func DistroByName(name string) (Distro, error) {
	var names []string
	for _, d := range Distros {
		if d.Name == name {
			return d, nil
		}
		names = append(names, d.Name)
	}
	return Distro{}, fmt.Errorf("distro %q: want one of %s", name, strings.Join(names, ", "))
}

// CacheDir holds the root filesystems, outside the repository so that
// clones and `git clean` keep them.
const CacheDir = "/var/cache/drover-lab"

// rootfsPackages go on top of minbase: systemd as PID 1, dbus for
// systemctl, procps for ps/pgrep/kill, curl to poke at myapp from inside,
// nodejs: each release's own Node (18 on bookworm, 20 on trixie) for the
// Node scenarios, openssh-server and python3-apt (with python3) for the
// fleet test (testdata/fleet), where Ansible drives the containers over
// SSH: its apt module needs python3-apt. sshd is disabled at boot
// (prepareRootfs): the containers share the host's network, so each fleet
// host starts it on a port of its own.
var rootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "procps", "curl", "nodejs", "openssh-server", "python3-apt"}

// rootfsRecipe is everything a cached rootfs depends on; its hash names the
// cache entry, so changing any of it builds a new one. Bump the prep line
// when changing prepareRootfs.
func rootfsRecipe(d Distro) string {
	return fmt.Sprintf("suite=%s\nvariant=minbase\ninclude=%s\nprep=2\n", d.Name, strings.Join(rootfsPackages, ","))
}

// RootfsPath is where the cached rootfs of d lives once built.
func RootfsPath(d Distro) string {
	sum := sha256.Sum256([]byte(rootfsRecipe(d)))
	return filepath.Join(CacheDir, d.Name+"-"+hex.EncodeToString(sum[:6]))
}

// EnsureRootfs returns the cached rootfs of d, building it first if
// needed (about a minute). Concurrent lab runs wait for each other's build
// through a lock file rather than building twice.
func EnsureRootfs(ctx context.Context, d Distro, logf Logf) (string, error) {
	final := RootfsPath(d)
	if _, err := os.Stat(filepath.Join(final, "usr/lib/systemd/systemd")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(CacheDir, ".lock-"+d.Name))
	if err != nil {
		return "", fmt.Errorf("rootfs cache %s: %w", d.Name, err)
	}
	defer unlock()
	// Someone else may have built it while we waited for the lock.
	if _, err := os.Stat(filepath.Join(final, "usr/lib/systemd/systemd")); err == nil {
		return final, nil
	}
	// Holding the lock, any build directory of this distro is a leftover
	// of an interrupted run.
	stale, _ := filepath.Glob(filepath.Join(CacheDir, ".build-"+d.Name+"-*"))
	for _, dir := range stale {
		logf("removing %s, left by an interrupted build", dir)
		if err := removeTree(dir); err != nil {
			return "", err
		}
	}
	if Interrupted() {
		return "", fmt.Errorf("rootfs %s: %w", d.Name, ErrInterrupted)
	}
	tmp, err := os.MkdirTemp(CacheDir, ".build-"+d.Name+"-")
	if err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	logf("building the %s rootfs into %s (once; about a minute)", d.Name, final)
	start := time.Now()
	if err := buildRootfs(ctx, d, tmp); err != nil {
		if rmErr := removeTree(tmp); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	logf("built the %s rootfs in %v", d.Name, time.Since(start).Round(time.Second))
	return final, nil
}

func buildRootfs(ctx context.Context, d Distro, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	logPath := dir + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("debootstrap %s: %w", d.Name, err)
	}
	defer os.Remove(logPath)
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(rootfsPackages, ","), d.Name, dir)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group, so that an interrupt reaches dpkg and friends
	// too, through the pid we started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("debootstrap %s: %w", d.Name, err)
	}
	cancelInterrupt := OnInterrupt(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		removeTree(dir)
		os.Remove(logPath)
	})
	defer cancelInterrupt()
	if err := cmd.Wait(); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("debootstrap %s: %w\n%s", d.Name, err, tail)
	}
	return prepareRootfs(dir)
}

// prepareRootfs adjusts a fresh rootfs for the lab: a minbase system boots
// to "running" in a container as it is, but its top directory came from
// MkdirTemp (0700) and must be 0755 like any /. sshd is not started at
// boot: on the host's network every container's sshd would want port 22.
func prepareRootfs(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	links, err := filepath.Glob(filepath.Join(dir, "etc/systemd/system/*.wants/ssh.*"))
	if err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	for _, link := range links {
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("prepare rootfs: disable sshd: %w", err)
		}
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another lab run holds it: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removeTree removes dir after detaching whatever an interrupted
// debootstrap left mounted inside it (/proc, /sys): os.RemoveAll would
// otherwise walk into them.
func removeTree(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, mp := range mounts {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	if left, err := mountsUnder(dir); err != nil || len(left) > 0 {
		return fmt.Errorf("remove %s: still mounted inside: %v (%v)", dir, left, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := cgroup.UnescapeMount(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}
