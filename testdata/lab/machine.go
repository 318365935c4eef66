package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bind makes host file Src appear read-only at Dst in a container, or,
// with Copy, installs a copy of it there once the container has booted: a
// file of the container's own (in its overlay) that a scenario may replace,
// as a package upgrade would.
type Bind struct {
	Src, Dst string
	Copy     bool
}

// Machine is one booted container.
type Machine struct {
	Distro Distro
	Name   string
	// Leader is the container's PID 1 (its systemd), as a host pid: what
	// nsenter enters.
	Leader int
	// ConsoleLog is the file that receives the container's console.
	ConsoleLog string

	// PoweroffTook is how long Shutdown took, once it returned.
	PoweroffTook time.Duration

	// closing is set once Shutdown begins: commands started inside after
	// that would keep the container's final kill spree waiting.
	closing atomic.Bool

	nspawn          *exec.Cmd
	exited          chan struct{} // closed once nspawn has been reaped
	cancelInterrupt func()
	shutdownOnce    sync.Once
	shutdownErr     error
}

// bootCount numbers the containers this process boots.
var bootCount atomic.Int64

// Boot starts systemd-nspawn on root and waits until the container's
// systemd reports the system running (or degraded). logDir receives the
// console log. The caller must call Shutdown.
func Boot(ctx context.Context, d Distro, root string, binds []Bind, logDir string, logf Logf) (*Machine, error) {
	if Interrupted() {
		return nil, fmt.Errorf("boot %s: %w", d.Name, ErrInterrupted)
	}
	// Unique, so that nspawn's per-machine paths (/run/systemd/nspawn/
	// propagate/NAME) never collide between runs, nor between containers
	// of one run that boot the same distro (the fleet test boots several).
	name := fmt.Sprintf("drover-lab-%s-%d-%d", d.Name, os.Getpid(), bootCount.Add(1))
	m := &Machine{
		Distro:     d,
		Name:       name,
		ConsoleLog: filepath.Join(logDir, "console-"+name+".log"),
		exited:     make(chan struct{}),
		// Until registered below; OnInterrupt may call Shutdown before.
		cancelInterrupt: func() {},
	}
	console, err := os.Create(m.ConsoleLog)
	if err != nil {
		return nil, fmt.Errorf("boot %s: %w", d.Name, err)
	}
	defer console.Close() // nspawn has its own copy
	args := []string{
		// No system bus on the host: do not register with machined, and
		// stay in the caller's scope instead of asking for one.
		"--register=no", "--keep-unit",
		// The cached rootfs is the lower layer of an overlay on tmpfs:
		// nothing a run does reaches the cache.
		"--volatile=overlay",
		"--machine=" + m.Name,
		"--directory=" + root,
		// The console is a log, nobody types into it.
		"--console=read-only",
		"--boot",
	}
	for _, b := range binds {
		if !b.Copy {
			args = append(args, "--bind-ro="+b.Src+":"+b.Dst)
		}
	}
	m.nspawn = exec.Command("systemd-nspawn", args...)
	m.nspawn.Stdout = console
	m.nspawn.Stderr = console
	m.nspawn.SysProcAttr = &syscall.SysProcAttr{
		// Out of the terminal's process group: a ^C goes to the lab, which
		// tears down in order, not to nspawn directly.
		Setpgid: true,
		// If the lab dies without tearing down (go test's -timeout kills
		// it), nspawn still powers the container off.
		Pdeathsig: syscall.SIGTERM,
	}
	logf("$ systemd-nspawn %s", strings.Join(args, " "))
	start := time.Now()
	if err := m.nspawn.Start(); err != nil {
		return nil, fmt.Errorf("boot %s: start systemd-nspawn: %w", d.Name, err)
	}
	go func() {
		m.nspawn.Wait()
		close(m.exited)
	}()
	m.cancelInterrupt = OnInterrupt(func() {
		err := m.Shutdown()
		fmt.Fprintf(os.Stderr, "lab: %s powered off in %v (%v)\n", m.Name, m.PoweroffTook.Round(time.Millisecond), err)
	})

	if err := m.waitBooted(ctx); err != nil {
		tail := m.consoleTail(3000)
		m.Shutdown()
		return nil, fmt.Errorf("boot %s: %w\nconsole (%s):\n%s", d.Name, err, m.ConsoleLog, tail)
	}
	for _, b := range binds {
		if !b.Copy {
			continue
		}
		if err := m.InstallFile(b.Src, b.Dst); err != nil {
			m.Shutdown()
			return nil, fmt.Errorf("boot %s: %w", d.Name, err)
		}
	}
	logf("%s booted in %v (nspawn pid %d, container PID 1 = host pid %d)", d.Name, time.Since(start).Round(time.Millisecond), m.nspawn.Process.Pid, m.Leader)
	return m, nil
}

// waitBooted finds the container's PID 1 among nspawn's children, then
// polls `systemctl is-system-running --wait` inside until it says running
// or degraded: before systemd has set up its bus it answers "offline" or
// fails to connect.
func (m *Machine) waitBooted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last string
	for {
		if m.Leader == 0 {
			m.Leader = m.findLeader()
		}
		if m.Leader != 0 {
			out, _ := m.Output(ctx, "systemctl", "is-system-running", "--wait")
			last = strings.TrimSpace(out)
			switch last {
			case "running", "degraded":
				return nil
			}
		}
		select {
		case <-m.exited:
			return fmt.Errorf("systemd-nspawn exited: %v", m.nspawn.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not booted (is-system-running said %q): %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findLeader returns the child of nspawn that is PID 1 of a new pid
// namespace and already runs systemd (before its exec it is still nspawn's
// inner child), or 0.
func (m *Machine) findLeader() int {
	pid := m.nspawn.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(data)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", child))
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			if strings.TrimSpace(string(comm)) == "systemd" && isNamespaceInit(string(status)) {
				return child
			}
		}
	}
	return 0
}

// isNamespaceInit says whether a /proc/PID/status describes PID 1 of a
// nested pid namespace ("NSpid:\t1234\t1").
func isNamespaceInit(status string) bool {
	for line := range strings.SplitSeq(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			return len(f) >= 2 && f[len(f)-1] == "1"
		}
	}
	return false
}

// containerEnv is the whole environment of commands run inside: nothing
// of the host's leaks in, and systemctl prints plain text.
var containerEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"HOME=/root",
	"TERM=dumb",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
	"SYSTEMD_URLIFY=0",
}

// Command returns a command that runs args inside the container, in all
// its namespaces, with containerEnv.
func (m *Machine) Command(ctx context.Context, args ...string) *exec.Cmd {
	nsArgs := append([]string{"--target", strconv.Itoa(m.Leader), "--all", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsArgs...)
	cmd.Env = containerEnv
	cmd.WaitDelay = time.Second
	return cmd
}

// Output runs args inside the container (10s at most, unless ctx says
// less) and returns what it printed on stdout and stderr, interleaved.
// A non-zero exit is an *exec.ExitError.
func (m *Machine) Output(ctx context.Context, args ...string) (string, error) {
	return m.OutputStdin(ctx, nil, args...)
}

// OutputStdin is Output with data on the command's stdin.
func (m *Machine) OutputStdin(ctx context.Context, stdin []byte, args ...string) (string, error) {
	if m.closing.Load() {
		return "", fmt.Errorf("%s: %s is shutting down", strings.Join(args, " "), m.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := m.Command(ctx, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: %w (%w)", strings.Join(args, " "), ctx.Err(), err)
	}
	return out.String(), err
}

// WriteFile writes data to path inside the container (into its overlay),
// creating the directories above it.
func (m *Machine) WriteFile(ctx context.Context, path string, data []byte) error {
	out, err := m.OutputStdin(ctx, data, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1"`, "sh", path)
	if err != nil {
		return fmt.Errorf("write %s in %s: %w\n%s", path, m.Distro.Name, err, out)
	}
	return nil
}

// InstallFile installs host file src at dst inside the container (in its
// overlay), mode 0755, the way a package manager replaces a file: it writes
// a temporary file next to dst and renames it over dst. A process running
// the old dst keeps its (now unnamed) file. It writes through
// /proc/<container PID 1>/root, the container's own view of its files.
func (m *Machine) InstallFile(src, dst string) error {
	if m.closing.Load() {
		return fmt.Errorf("install %s: %s is shutting down", dst, m.Name)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s in %s: %w", dst, m.Distro.Name, err)
	}
	root := fmt.Sprintf("/proc/%d/root", m.Leader)
	final := filepath.Join(root, dst)
	tmp := filepath.Join(filepath.Dir(final), "."+filepath.Base(dst)+".lab-new")
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("install %s in %s: %w", dst, m.Distro.Name, err)
	}
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return fmt.Errorf("install %s in %s: %w", dst, m.Distro.Name, err)
	}
	// WriteFile's mode is only for a new file, and the umask cuts it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s in %s: %w", dst, m.Distro.Name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s in %s: %w", dst, m.Distro.Name, err)
	}
	return nil
}

// Shutdown powers the container off and waits for nspawn to exit. SIGTERM
// asks nspawn for a clean poweroff; PID 1 ignores it while it is still
// booting, so after a while the container's PID 1 gets SIGKILL, which
// ends everything in its pid namespace. Safe to call more than once.
func (m *Machine) Shutdown() error {
	m.closing.Store(true)
	m.shutdownOnce.Do(func() {
		defer m.cancelInterrupt()
		start := time.Now()
		defer func() { m.PoweroffTook = time.Since(start) }()
		pid := m.nspawn.Process.Pid
		wait := func(d time.Duration) bool {
			select {
			case <-m.exited:
				return true
			case <-time.After(d):
				return false
			}
		}
		syscall.Kill(pid, syscall.SIGTERM)
		if wait(15 * time.Second) {
			return
		}
		if m.Leader != 0 {
			syscall.Kill(m.Leader, syscall.SIGKILL)
		}
		if wait(5 * time.Second) {
			m.shutdownErr = fmt.Errorf("shut down %s: no clean poweroff in 15s, killed its PID 1 (host pid %d)", m.Name, m.Leader)
			return
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if !wait(5 * time.Second) {
			m.shutdownErr = fmt.Errorf("shut down %s: systemd-nspawn (pid %d) survived SIGKILL", m.Name, pid)
			return
		}
		m.shutdownErr = fmt.Errorf("shut down %s: had to SIGKILL systemd-nspawn (pid %d)", m.Name, pid)
	})
	return m.shutdownErr
}

// Exited is closed once the container is gone.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// consoleTail returns the last n bytes of the console log.
func (m *Machine) consoleTail(n int) string {
	data, err := os.ReadFile(m.ConsoleLog)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// ErrExit reports whether err is a command's non-zero exit, and its code.
func ErrExit(err error) (code int, ok bool) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	return 0, false
}
