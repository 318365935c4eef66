package fleet

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/lab"
)

func TestMain(m *testing.M) {
	// t.Cleanup does not run when the test binary is interrupted: the lab
	// tears the containers down itself.
	lab.HandleInterrupts(syscall.SIGINT, syscall.SIGTERM)
	os.Exit(m.Run())
}

// The versions the fleet goes through. release, good and next are built
// by `make deb` (next is what the bad-input runs try to roll out, and the
// last step does); the others are the good package repacked (repack):
// broken's /usr/bin/myapp exits 1 at start, nodeps depends on a package no
// host has, and corrupt is not a package at all.
const (
	release = "1.0.0"
	good    = "1.0.1"
	broken  = "1.0.2"
	next    = "1.0.3"
	nodeps  = "1.0.4"
	corrupt = "1.0.5"
)

// ansibleSeries is the ansible-core the test is pinned to: Debian
// bookworm's ansible-core package.
const ansibleSeries = "2.14."

// hostTools maps the programs the fleet test runs on the test machine to
// the Debian packages that have them (make deps installs them too).
var hostTools = map[string]string{
	"ansible-playbook": "ansible-core",
	"haproxy":          "haproxy",
	"ssh":              "openssh-client",
	"ssh-keygen":       "openssh-client",
	"dpkg-deb":         "dpkg",
}

// brokenMyapp is /usr/bin/myapp in the broken package.
const brokenMyapp = `#!/bin/sh
# A broken build of myapp, made by the drover fleet test: it cannot start.
echo "myapp: broken build, cannot start" >&2
exit 1
`

// host is one machine of the fleet.
type host struct {
	name    string
	m       *lab.Machine
	sshPort int
	appPort int
}

// fleet is what the steps share.
type fleet struct {
	t       *testing.T // the current step's
	top     *testing.T // TestFleet
	root    string     // the repository
	dir     string     // the test's work directory
	key     string     // the SSH private key
	hosts   []*host
	bare    *host // a host without drover
	pkgs    map[string]string
	haproxy int // HAProxy's frontend port
	// gens is each host's drover generation, recorded after the broken
	// rollout: the bad-input runs must not move it.
	gens map[string]int
	// failures are the steps' errors, repeated in the summary at the end
	// where a CI excerpt of the output's tail shows them.
	failures []string
}

// errorf reports a failure of step t, and keeps it for the summary.
func (f *fleet) errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	f.failures = append(f.failures, t.Name()+": "+firstLine(msg))
	t.Error(msg)
}

// fatalf is errorf, then ends step t.
func (f *fleet) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	f.errorf(t, format, args...)
	t.FailNow()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet test boots containers; skipped with -short")
	}
	start := time.Now()
	f := setUp(t)
	f.top = t
	t.Logf("set up in %v: packages built, %d hosts and a bare one booted with sshd", time.Since(start).Round(time.Millisecond), len(f.hosts))

	steps := []struct {
		name string
		run  func(*fleet, *testing.T)
	}{
		{"install", (*fleet).install},
		{"haproxy", (*fleet).startHAProxy},
		{"good-rollout", (*fleet).goodRollout},
		{"second-run-changes-nothing", (*fleet).secondRun},
		{"broken-rollout", (*fleet).brokenRollout},
		{"unreachable-host", (*fleet).unreachableHost},
		{"host-without-drover", (*fleet).hostWithoutDrover},
		{"corrupt-package", (*fleet).corruptPackage},
		{"uninstallable-package", (*fleet).uninstallablePackage},
		{"next-release-cleans-the-stage", (*fleet).nextRelease},
	}
	var table strings.Builder
	for _, step := range steps {
		stepStart := time.Now()
		ok := t.Run(step.name, func(t *testing.T) { step.run(f, t) })
		result := "PASS"
		if !ok {
			result = "FAIL"
		}
		fmt.Fprintf(&table, "%-30s %s %6.1fs\n", step.name, result, time.Since(stepStart).Seconds())
		if !ok {
			break
		}
	}
	for _, msg := range f.failures {
		fmt.Fprintf(&table, "  %s\n", msg)
	}
	t.Logf("\n%sfleet test took %v in all", table.String(), time.Since(start).Round(time.Millisecond))
}

// setUp checks the tools, builds the packages, boots the hosts and starts
// sshd in each.
func setUp(t *testing.T) *fleet {
	ctx := t.Context()
	if err := lab.EnsureTools(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	ensureTools(t)
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := make([]string, len(lab.Distros))
	rootfsErrs := make([]error, len(lab.Distros))
	var wg sync.WaitGroup
	for i, d := range lab.Distros {
		wg.Go(func() { rootfs[i], rootfsErrs[i] = lab.EnsureRootfs(ctx, d, t.Logf) })
	}
	// Not t.TempDir: an interrupt ends the process without t.Cleanup.
	dir, err := os.MkdirTemp("", "drover-fleet-")
	if err != nil {
		wg.Wait()
		t.Fatal(err)
	}
	cancelRemove := lab.OnInterrupt(func() { os.RemoveAll(dir) })
	t.Cleanup(func() {
		wg.Wait()
		os.RemoveAll(dir)
		cancelRemove()
	})
	// Readable by the containers' root through the bind mount.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, root: root, dir: dir, pkgs: map[string]string{}}

	buildStart := time.Now()
	var buildErrs [3]error
	var bw sync.WaitGroup
	for i, v := range []string{release, good, next} {
		bw.Go(func() { buildErrs[i] = lab.MakeDebs(ctx, root, dir, v) })
	}
	bw.Wait()
	wg.Wait()
	if err := errors.Join(append(buildErrs[:], rootfsErrs...)...); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{release, good, next} {
		f.pkgs[v] = f.debPath("myapp", v)
	}
	f.makeBadPackages()
	t.Logf("make deb built %s, %s and %s in %v; %s, %s and %s repacked from %s", release, good, next, time.Since(buildStart).Round(time.Millisecond), broken, nodeps, corrupt, good)

	f.key = filepath.Join(dir, "id_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drover-fleet-test", "-f", f.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(f.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	// Bookworm and trixie mixed; the bare host has no drover.
	distros := []lab.Distro{lab.Distros[0], lab.Distros[1], lab.Distros[0], lab.Distros[1], lab.Distros[1]}
	rootOf := map[string]string{lab.Distros[0].Name: rootfs[0], lab.Distros[1].Name: rootfs[1]}
	for i, d := range distros {
		h := &host{name: fmt.Sprintf("host%d", i+1)}
		if i == len(distros)-1 {
			h.name = "bare"
		}
		bootStart := time.Now()
		m, err := lab.Boot(ctx, d, rootOf[d.Name], []lab.Bind{{Src: filepath.Join(dir, "dist"), Dst: "/dist"}}, dir, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		h.m = m
		t.Cleanup(func() {
			if err := m.Shutdown(); err != nil {
				t.Error(err)
			}
		})
		if h.sshPort, err = lab.FreePort(); err != nil {
			t.Fatal(err)
		}
		if h.appPort, err = lab.FreePort(); err != nil {
			t.Fatal(err)
		}
		f.setUpHost(h, pub, h.name != "bare")
		t.Logf("%s: %s (systemd %d), sshd on 127.0.0.1:%d, myapp.socket on 127.0.0.1:%d, ready in %v", h.name, d.Name, d.Systemd, h.sshPort, h.appPort, time.Since(bootStart).Round(time.Millisecond))
		if h.name == "bare" {
			f.bare = h
		} else {
			f.hosts = append(f.hosts, h)
		}
	}
	return f
}

// ensureTools installs the test machine's missing tools from Debian, then
// pins ansible-core to its series: a playbook run by another major of
// Ansible proves nothing about this one.
func ensureTools(t *testing.T) {
	var missing []string
	for prog, pkg := range hostTools {
		if _, err := exec.LookPath(prog); err != nil && !strings.Contains(strings.Join(missing, " "), pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("DROVER_REQUIRE_TOOLS") == "" {
			t.Logf("installing %s", strings.Join(missing, " "))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		}
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get install %s: %v\n%s", strings.Join(missing, " "), err, out)
		}
	}
	out, err := exec.Command("ansible-playbook", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook --version: %v\n%s", err, out)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if !strings.Contains(first, "[core "+ansibleSeries) {
		t.Fatalf("ansible-playbook is %q; this test is pinned to ansible-core %sx (Debian bookworm's ansible-core package)", first, ansibleSeries)
	}
	t.Logf("%s", first)
}

// debPath is where MakeDebs put package name at version.
func (f *fleet) debPath(name, version string) string {
	return filepath.Join(f.dir, "dist", version, fmt.Sprintf("%s_%s-1_%s.deb", name, version, lab.DebArch()))
}

// makeBadPackages makes broken, nodeps and corrupt from good.
func (f *fleet) makeBadPackages() {
	f.t.Helper()
	src := f.pkgs[good]
	f.pkgs[broken] = f.repack(src, broken, []byte(brokenMyapp), "")
	f.pkgs[nodeps] = f.repack(src, nodeps, nil, "drover-fleet-no-such-package")
	data, err := os.ReadFile(src)
	if err != nil {
		f.t.Fatal(err)
	}
	f.pkgs[corrupt] = f.debPath("myapp", corrupt)
	if err := os.MkdirAll(filepath.Dir(f.pkgs[corrupt]), 0o755); err != nil {
		f.t.Fatal(err)
	}
	// Cut short, as by an interrupted download.
	if err := os.WriteFile(f.pkgs[corrupt], data[:len(data)/3], 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// repack rebuilds the .deb src as version, with /usr/bin/myapp replaced
// by myapp (unless nil) and depends added to Depends: (unless "").
func (f *fleet) repack(src, version string, myapp []byte, depends string) string {
	f.t.Helper()
	tree := filepath.Join(f.dir, "repack-"+version)
	if out, err := exec.Command("dpkg-deb", "-R", src, tree).CombinedOutput(); err != nil {
		f.t.Fatalf("dpkg-deb -R %s: %v\n%s", src, err, out)
	}
	control := filepath.Join(tree, "DEBIAN/control")
	data, err := os.ReadFile(control)
	if err != nil {
		f.t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^Version: .*$`).ReplaceAllString(string(data), "Version: "+version+"-1")
	if depends != "" {
		text = regexp.MustCompile(`(?m)^(Depends: .*)$`).ReplaceAllString(text, "$1, "+depends)
	}
	if err := os.WriteFile(control, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if myapp != nil {
		if err := os.WriteFile(filepath.Join(tree, "usr/bin/myapp"), myapp, 0o755); err != nil {
			f.t.Fatal(err)
		}
		// dpkg does not check md5sums on install, but debsums would.
		sums := filepath.Join(tree, "DEBIAN/md5sums")
		if data, err := os.ReadFile(sums); err == nil {
			sum := md5.Sum(myapp)
			text := regexp.MustCompile(`(?m)^[0-9a-f]+  usr/bin/myapp$`).ReplaceAllString(string(data), hex.EncodeToString(sum[:])+"  usr/bin/myapp")
			if err := os.WriteFile(sums, []byte(text), 0o644); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	dst := f.debPath("myapp", version)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-b", tree, dst).CombinedOutput(); err != nil {
		f.t.Fatalf("dpkg-deb -b %s: %v\n%s", dst, err, out)
	}
	return dst
}

// setUpHost starts sshd on the host's port with the test's key for root,
// moves myapp.socket to the host's app port (a drop-in written before the
// install, as an admin may) and installs drover 1.0.0.
func (f *fleet) setUpHost(h *host, pub []byte, withDrover bool) {
	f.t.Helper()
	ctx := f.t.Context()
	write := func(path, text string) {
		if err := h.m.WriteFile(ctx, path, []byte(text)); err != nil {
			f.t.Fatal(err)
		}
	}
	write("/etc/ssh/sshd_config.d/drover-fleet.conf", fmt.Sprintf(`# Written by the drover fleet test: the containers share the host's network.
Port %d
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
`, h.sshPort))
	write("/root/.ssh/authorized_keys", string(pub))
	if out, err := h.m.Output(ctx, "sh", "-c", "chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys && systemctl start ssh.service"); err != nil {
		f.t.Fatalf("%s: start sshd: %v\n%s", h.name, err, out)
	}
	if withDrover {
		write(lab.SocketDropInPath, lab.SocketDropIn(h.appPort))
		f.inside(h, 2*time.Minute, "dpkg", "-i", fmt.Sprintf("/dist/%s/drover_%s-1_%s.deb", release, release, lab.DebArch()))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.sshPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := h.m.Output(ctx, "systemctl", "status", "--no-pager", "ssh.service")
			f.t.Fatalf("%s: sshd does not listen on 127.0.0.1:%d: %v\n%s", h.name, h.sshPort, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inside runs a command in a host, fails the test if it fails, and returns
// its output.
func (f *fleet) inside(h *host, timeout time.Duration, args ...string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), timeout)
	defer cancel()
	cmd := h.m.Command(ctx, args...)
	cmd.Env = append(cmd.Env, "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("%s: %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inventory writes an inventory of hosts (plus extra lines in the group)
// and returns its path.
func (f *fleet) inventory(name string, hosts []*host, extra ...string) string {
	f.t.Helper()
	var b strings.Builder
	b.WriteString("# Written by the drover fleet test.\n[myapp]\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s ansible_port=%d myapp_port=%d\n", h.name, h.sshPort, h.appPort)
	}
	for _, line := range extra {
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, `
[myapp:vars]
ansible_host=127.0.0.1
ansible_user=root
ansible_become=false
ansible_ssh_private_key_file=%s
ansible_python_interpreter=/usr/bin/python3
drover_app_health_url=http://127.0.0.1:{{ myapp_port }}/
drover_app_health_expect="version={{ drover_app_new_upstream }} "
`, f.key)
	path := filepath.Join(f.dir, name+".ini")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// play is one ansible-playbook run.
type play struct {
	out   string
	code  int
	took  time.Duration
	lines []timedLine
}

type timedLine struct {
	at   time.Duration
	text string
}

// playbook runs packaging/ansible/rollout.yml on inventory with package,
// logs its output, and returns it.
func (f *fleet) playbook(inventory, pkg string) play {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 8*time.Minute)
	defer cancel()
	dir := filepath.Join(f.root, "packaging/ansible")
	args := []string{"-i", inventory, "rollout.yml", "-e", "drover_app_package=" + pkg}
	cmd := exec.CommandContext(ctx, "ansible-playbook", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"),
		"ANSIBLE_HOME="+filepath.Join(f.dir, "ansible-home"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(f.dir, "ansible-tmp"),
		"ANSIBLE_NOCOLOR=1",
		// No SSH master processes left behind after the run; a private
		// known_hosts (every container has the rootfs's host keys).
		"ANSIBLE_SSH_ARGS=-o ControlMaster=no -o ControlPath=none -o ConnectTimeout=5 -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="+filepath.Join(f.dir, "known_hosts"),
	)
	// ssh and the workers ansible forks go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("ansible-playbook: %v", err)
	}
	cancelInterrupt := lab.OnInterrupt(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer cancelInterrupt()
	var p play
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			p.lines = append(p.lines, timedLine{time.Since(start), sc.Text()})
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	p.took = time.Since(start)
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintf(&b, "%6.1fs %s\n", l.at.Seconds(), l.text)
		p.out += l.text + "\n"
	}
	if err != nil {
		code, ok := lab.ErrExit(err)
		if !ok {
			f.t.Fatalf("ansible-playbook: %v\n%s", err, b.String())
		}
		p.code = code
	}
	f.t.Logf("$ ansible-playbook %s (exit %d, took %v)\n%s", strings.Join(args, " "), p.code, p.took.Round(time.Millisecond), b.String())
	return p
}

// batches returns how long each batch of the rollout play took: from its
// PLAY banner to the next banner or the recap.
func (p play) batches() []time.Duration {
	var starts []time.Duration
	var end time.Duration
	for _, l := range p.lines {
		switch {
		case strings.HasPrefix(l.text, "PLAY [Rollout]"):
			starts = append(starts, l.at)
		case strings.HasPrefix(l.text, "PLAY RECAP"):
			end = l.at
		}
	}
	var out []time.Duration
	for i, s := range starts {
		e := end
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		out = append(out, e-s)
	}
	return out
}

// recap is one host's line of the PLAY RECAP.
type recap struct{ ok, changed, unreachable, failed int }

var recapRE = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func (p play) recap() map[string]recap {
	out := map[string]recap{}
	for _, m := range recapRE.FindAllStringSubmatch(p.out, -1) {
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		out[m[1]] = recap{n(2), n(3), n(4), n(5)}
	}
	return out
}

// state is what one host runs and has on disk.
type state struct {
	pkg        string // dpkg's version of myapp
	generation int
	ready      string // ready/workers
	answer     string // the version that answers on the host's app port
}

func (s state) String() string {
	return fmt.Sprintf("package %s, generation %d, %s workers ready, answers version %s", s.pkg, s.generation, s.ready, s.answer)
}

func (f *fleet) state(h *host) state {
	f.t.Helper()
	var s state
	ctx := f.t.Context()
	out, _ := h.m.Output(ctx, "dpkg-query", "-W", "-f", "${Version}", "myapp")
	s.pkg = strings.TrimSpace(out)
	out, err := h.m.Output(ctx, "drover", "status", "--json", "myapp")
	if err == nil {
		var st struct {
			Drover struct {
				Generation, Ready, Workers int
			} `json:"drover"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			f.t.Fatalf("%s: drover status --json: %v\n%s", h.name, err, out)
		}
		s.generation = st.Drover.Generation
		s.ready = fmt.Sprintf("%d/%d", st.Drover.Ready, st.Drover.Workers)
	}
	s.answer = answerVersion(h.appPort)
	return s
}

var versionRE = regexp.MustCompile(`version=(\S+)`)

// answerVersion asks 127.0.0.1:port once and returns the version that
// answered, or what went wrong.
func answerVersion(port int) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := versionRE.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return fmt.Sprintf("(%s: %q)", resp.Status, body)
}

// states logs every host's state and returns it.
func (f *fleet) states(what string) map[string]state {
	f.t.Helper()
	out := map[string]state{}
	var lines []string
	for _, h := range f.hosts {
		out[h.name] = f.state(h)
		lines = append(lines, fmt.Sprintf("  %s (%s): %s", h.name, h.m.Distro.Name, out[h.name]))
	}
	f.t.Logf("%s:\n%s", what, strings.Join(lines, "\n"))
	return out
}

// wantAll fails the test unless every host has package version v
// installed and answers with it, every worker ready.
func (f *fleet) wantAll(t *testing.T, states map[string]state, v string) {
	t.Helper()
	for _, h := range f.hosts {
		s := states[h.name]
		if s.pkg != v+"-1" || s.answer != v || !readyAll(s.ready) {
			f.errorf(t, "%s: %s; want package %s-1 answering %s, every worker ready", h.name, s, v, v)
		}
	}
}

func readyAll(r string) bool {
	a, b, ok := strings.Cut(r, "/")
	return ok && a == b && a != "0"
}

// install: the role on hosts that have drover but no myapp yet.
func (f *fleet) install(t *testing.T) {
	f.t = t
	p := f.playbook(f.inventory("fleet", f.hosts), f.pkgs[release])
	if p.code != 0 {
		f.fatalf(t, "the install of %s failed (exit %d)", release, p.code)
	}
	f.wantAll(t, f.states("after the install"), release)
}

// startHAProxy runs Debian's HAProxy in front of the four hosts: a real
// load balancer that neither retries nor redispatches, so that every
// failed request reaches the client.
func (f *fleet) startHAProxy(t *testing.T) {
	f.t = t
	port, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	f.haproxy = port
	sock := filepath.Join(f.dir, "haproxy.sock")
	var servers strings.Builder
	for _, h := range f.hosts {
		fmt.Fprintf(&servers, "    server %s 127.0.0.1:%d check inter 500ms fall 2 rise 2\n", h.name, h.appPort)
	}
	cfg := fmt.Sprintf(`# Written by the drover fleet test.
global
    stats socket %s mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # Every failure reaches the client: no second try, no other server.
    retries 0
    no option redispatch

frontend fleet
    bind 127.0.0.1:%d
    default_backend myapp

backend myapp
    balance roundrobin
    option httpchk GET /
%s`, sock, port, servers.String())
	path := filepath.Join(f.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		f.fatalf(t, "haproxy -c: %v\n%s", err, out)
	}
	logFile, err := os.Create(filepath.Join(f.dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.fatalf(t, "haproxy: %v", err)
	}
	logFile.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	cancelInterrupt := lab.OnInterrupt(stop)
	// The fleet's cleanup, not this step's: later steps go through it.
	f.cleanupLater(func() { stop(); cancelInterrupt() })
	t.Logf("haproxy %s (pid %d) on 127.0.0.1:%d:\n%s", haproxyVersion(), cmd.Process.Pid, port, cfg)

	deadline := time.Now().Add(30 * time.Second)
	for {
		up, stat, err := serversUp(sock)
		if err == nil && up == len(f.hosts) {
			t.Logf("every server is UP:\n%s", stat)
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(f.dir, "haproxy.log"))
			f.fatalf(t, "haproxy: %d of %d servers UP after 30s (%v):\n%s\nlog:\n%s", up, len(f.hosts), err, stat, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cleanups run when TestFleet ends (registered on the top test).
func (f *fleet) cleanupLater(fn func()) { f.top.Cleanup(fn) }

func haproxyVersion() string {
	out, _ := exec.Command("haproxy", "-v").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// serversUp asks HAProxy's stats socket how many servers of backend myapp
// are UP, and returns the name and status of each.
func serversUp(sock string) (int, string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return 0, "", err
	}
	data, err := io.ReadAll(c)
	if err != nil {
		return 0, "", err
	}
	up := 0
	var b strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 18 || f[0] != "myapp" || f[1] == "BACKEND" {
			continue
		}
		fmt.Fprintf(&b, "  %s %s\n", f[1], f[17])
		if f[17] == "UP" {
			up++
		}
	}
	return up, b.String(), nil
}

// fleetLoad bounds a load run through HAProxy: a rollout of the fleet
// takes minutes, and each new connection holds two ephemeral ports
// (client to HAProxy, HAProxy to a host) in TIME_WAIT.
var fleetLoad = lab.LoadBounds{MaxDuration: 6 * time.Minute, NewConnEvery: 10 * time.Millisecond, MaxNewConn: 12_000}

// underLoad runs fn while the load client sends through HAProxy, in
// phases "before", during and "after", and fails the test on any failed
// request. It returns the requests and failures seen in all.
func (f *fleet) underLoad(t *testing.T, during string, fn func()) (ok, failed int, counts []lab.LoadCounts) {
	ld := lab.StartLoad(f.haproxy, "before", fleetLoad)
	defer ld.Stop()
	f.waitAnswers(t, ld, 0, 100)
	ld.Next(during)
	fn()
	ld.Next("after")
	f.waitAnswers(t, ld, 2, 100)
	ld.Stop()
	if ended, why := ld.Ended(); !ended || why != "stopped" {
		f.errorf(t, "the load client ended by itself (%s) before the test stopped it", why)
	}
	var lines []string
	for i := 0; i <= 2; i++ {
		c := ld.Counts(i)
		counts = append(counts, c)
		ok += c.OK
		failed += c.Failed + c.ConnErrs
		lines = append(lines, c.Name+":")
		for _, l := range c.PerClient {
			lines = append(lines, "  "+l)
		}
	}
	t.Logf("requests through HAProxy:\n%s", strings.Join(lines, "\n"))
	t.Logf("load: %d requests answered, %d failed", ok, failed)
	if failed > 0 {
		f.errorf(t, "%d requests through HAProxy failed, want 0", failed)
	}
	return ok, failed, counts
}

// waitAnswers waits until phase i has n answers.
func (f *fleet) waitAnswers(t *testing.T, ld *lab.Load, i, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for ld.Counts(i).OK < n {
		if ended, why := ld.Ended(); ended {
			f.fatalf(t, "the load client ended early: %s", why)
		}
		if time.Now().After(deadline) {
			f.fatalf(t, "phase %d: only %d answers in 20s", i, ld.Counts(i).OK)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// goodRollout: 1.0.1 across the four hosts under load; every host ends on
// it and no request fails.
func (f *fleet) goodRollout(t *testing.T) {
	f.t = t
	var p play
	_, _, counts := f.underLoad(t, "rollout of "+good, func() {
		p = f.playbook(f.inventory("fleet", f.hosts), f.pkgs[good])
	})
	if p.code != 0 {
		f.fatalf(t, "the rollout of %s failed (exit %d)", good, p.code)
	}
	f.logTimes(t, p)
	for v := range counts[2].Versions {
		if v != good {
			f.errorf(t, "after the rollout, version %s answered through HAProxy; want only %s", v, good)
		}
	}
	f.wantAll(t, f.states("after the rollout of "+good), good)
}

// logTimes logs the wall time of each batch (one host each here) and of
// the whole run.
func (f *fleet) logTimes(t *testing.T, p play) {
	var parts []string
	for i, d := range p.batches() {
		parts = append(parts, fmt.Sprintf("batch %d %.1fs", i+1, d.Seconds()))
	}
	t.Logf("wall time: %s; the fleet %.1fs (ansible-playbook from start to exit, preflight included)", strings.Join(parts, ", "), p.took.Seconds())
}

// secondRun: the same release again changes nothing on any host.
func (f *fleet) secondRun(t *testing.T) {
	f.t = t
	before := f.states("before the second run")
	p := f.playbook(f.inventory("fleet", f.hosts), f.pkgs[good])
	if p.code != 0 {
		f.fatalf(t, "the second run of %s failed (exit %d)", good, p.code)
	}
	rc := p.recap()
	for _, h := range f.hosts {
		if r, ok := rc[h.name]; !ok || r.changed != 0 {
			f.errorf(t, "%s: the second run reports %+v; want changed=0", h.name, r)
		}
	}
	after := f.states("after the second run")
	for _, h := range f.hosts {
		if before[h.name] != after[h.name] {
			f.errorf(t, "%s: was %s, now %s; want nothing changed", h.name, before[h.name], after[h.name])
		}
	}
}

// brokenRollout: a build that cannot start fails on the first host, which
// still serves 1.0.1 (drover rolled back) and has it on disk again; the
// others are untouched; no request fails; the play names drover's reason.
func (f *fleet) brokenRollout(t *testing.T) {
	f.t = t
	before := f.states("before the broken rollout")
	var p play
	f.underLoad(t, "rollout of the broken "+broken, func() {
		p = f.playbook(f.inventory("fleet", f.hosts), f.pkgs[broken])
	})
	if p.code == 0 {
		f.fatalf(t, "the rollout of the broken build succeeded")
	}
	f.logTimes(t, p)
	first := f.hosts[0]
	var msg string
	for _, l := range p.lines {
		if strings.Contains(l.text, "did not come up") {
			msg = l.text
			break
		}
	}
	t.Logf("the play printed for the broken build:\n%s", msg)
	for _, want := range []string{"fatal: [" + first.name + "]", "did not come up: reload failed: worker", "exit status 1", "drover serves generation", "Package put back to " + good + "-1", "broken build, cannot start"} {
		if !strings.Contains(msg, want) && !strings.Contains(p.out, want) {
			f.errorf(t, "the play's output does not say %q", want)
		}
	}
	if !strings.Contains(msg, "broken build, cannot start") {
		// Where journald put the worker's words, and when.
		t.Logf("%s's journal of the worker's line:\n%s", first.name, f.inside(first, 10*time.Second, "journalctl", "-b", "-o", "json", "--no-pager",
			"--output-fields=_PID,_SYSTEMD_UNIT,_SYSTEMD_CGROUP,_SOURCE_REALTIME_TIMESTAMP", "MESSAGE=myapp: broken build, cannot start"))
	}
	if len(p.batches()) != 1 {
		f.errorf(t, "the rollout play ran %d batches; want it to stop after the first", len(p.batches()))
	}
	after := f.states("after the broken rollout")
	f.wantAll(t, after, good)
	for _, h := range f.hosts[1:] {
		if before[h.name] != after[h.name] {
			f.errorf(t, "%s: was %s, now %s; want it untouched", h.name, before[h.name], after[h.name])
		}
	}
	f.gens = map[string]int{}
	for name, s := range after {
		f.gens[name] = s.generation
	}
}

// wantUnchanged fails the test unless every host still runs and has good,
// at the generation recorded after the broken rollout.
func (f *fleet) wantUnchanged(t *testing.T, what string) {
	t.Helper()
	states := f.states("after " + what)
	f.wantAll(t, states, good)
	for _, h := range f.hosts {
		if states[h.name].generation != f.gens[h.name] {
			f.errorf(t, "%s: generation %d, was %d: something reloaded it", h.name, states[h.name].generation, f.gens[h.name])
		}
	}
}

// badRun runs the play on inventory with pkg, wants it to fail saying
// want, and every host unchanged.
func (f *fleet) badRun(t *testing.T, what, inventory, pkg string, want ...string) {
	f.t = t
	p := f.playbook(inventory, pkg)
	if p.code == 0 {
		f.fatalf(t, "the play succeeded with %s", what)
	}
	for _, w := range want {
		if !strings.Contains(p.out, w) {
			f.errorf(t, "the play's output does not say %q", w)
		}
	}
	for _, l := range p.lines {
		if strings.HasPrefix(l.text, "fatal:") || strings.Contains(l.text, "UNREACHABLE!") {
			t.Logf("the play printed: %s", l.text)
		}
	}
	f.wantUnchanged(t, what)
}

// unreachableHost: a host nothing answers on, listed last, stops the run
// in the preflight: nothing is upgraded, not even the hosts before it.
func (f *fleet) unreachableHost(t *testing.T) {
	port, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	inv := f.inventory("unreachable", f.hosts, fmt.Sprintf("ghost ansible_port=%d myapp_port=%d", port, port))
	f.badRun(t, "an unreachable host", inv, f.pkgs[next], "UNREACHABLE!", "[ghost]", "NO MORE HOSTS LEFT")
}

// hostWithoutDrover: a host without drover, listed last, stops the run in
// the preflight.
func (f *fleet) hostWithoutDrover(t *testing.T) {
	inv := f.inventory("nodrover", append(append([]*host{}, f.hosts...), f.bare))
	f.badRun(t, "a host without drover", inv, f.pkgs[next], "bare has no drover", "install the drover package there first")
}

// corruptPackage: a .deb cut short stops the run in the preflight.
func (f *fleet) corruptPackage(t *testing.T) {
	f.badRun(t, "a corrupt package", f.inventory("fleet", f.hosts), f.pkgs[corrupt], "is not a package of myapp that dpkg can read")
}

// uninstallablePackage: a package apt refuses (a dependency no host has)
// fails on the first host, which is left as it was; the play stops there.
func (f *fleet) uninstallablePackage(t *testing.T) {
	f.badRun(t, "an uninstallable package", f.inventory("fleet", f.hosts), f.pkgs[nodeps],
		"fatal: ["+f.hosts[0].name+"]", "did not install", "drover-fleet-no-such-package")
}

// nextRelease: after all that, the next good release rolls out, and each
// host's stage keeps only what a rollback needs: that package and the one
// it replaced, not the older release, the broken build or the bad inputs.
func (f *fleet) nextRelease(t *testing.T) {
	f.t = t
	p := f.playbook(f.inventory("fleet", f.hosts), f.pkgs[next])
	if p.code != 0 {
		f.fatalf(t, "the rollout of %s failed (exit %d)", next, p.code)
	}
	f.logTimes(t, p)
	f.wantAll(t, f.states("after the rollout of "+next), next)
	want := []string{filepath.Base(f.debPath("myapp", good)), filepath.Base(f.debPath("myapp", next))}
	for _, h := range f.hosts {
		out := f.inside(h, 10*time.Second, "ls", "/var/cache/drover-app/myapp")
		got := strings.Fields(out)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			f.errorf(t, "%s: the stage holds %q, want %q", h.name, got, want)
		}
	}
}
