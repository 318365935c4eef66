package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The package versions TestPackages builds: myapp is installed at
// pkgRelease and upgraded to pkgUpgrade. The binaries report the package
// version (make deb sets main.version), so an answer names its package.
const (
	pkgRelease = "1.0.0"
	pkgUpgrade = "1.0.1"
)

// pkgDist is where the containers see the packages: pkgDist/VERSION/*.deb.
const pkgDist = "/dist"

// TestPackages proves the .deb packages under a real systemd, on each
// distro in a clean container that has nothing of drover but the packages
// (bind-mounted read-only at /dist): dpkg -i serves on the socket, an
// upgrade of myapp with dpkg -i under load fails no request and the new
// version answers, apt-get remove leaves nothing running, and purge
// removes the conffile and the enable state. The steps depend on each
// other, so the first failure ends the distro's run.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("the package lab boots containers; skipped with -short")
	}
	start := time.Now()
	ctx := t.Context()
	env := setUp(t, "drover-lab-packages-")
	root, dir := env.root, env.dir
	// Readable by the container's root through the bind mount.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{pkgRelease, pkgUpgrade} {
		if err := MakeDebs(ctx, root, dir, v); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := env.rootfs()
	t.Logf("set up in %v: make deb built %s and %s into %s", time.Since(start).Round(time.Millisecond), pkgRelease, pkgUpgrade, filepath.Join(dir, "dist"))

	results := map[string]map[string]string{} // step -> distro -> result
	for i, d := range Distros {
		t.Run(d.Name, func(t *testing.T) {
			bootStart := time.Now()
			m, err := Boot(ctx, d, rootfs[i], []Bind{{Src: filepath.Join(dir, "dist"), Dst: pkgDist}}, dir, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := m.Shutdown(); err != nil {
					t.Error(err)
				}
				t.Logf("%s: booted, tested and powered off in %v", d.Name, time.Since(bootStart).Round(time.Millisecond))
			})
			p := &pkgLab{m: m}
			for _, step := range pkgSteps {
				ok := t.Run(step.name, func(t *testing.T) {
					stepStart := time.Now()
					t.Cleanup(func() {
						result := "PASS"
						if t.Failed() {
							result = "FAIL"
						}
						if results[step.name] == nil {
							results[step.name] = map[string]string{}
						}
						results[step.name][d.Name] = fmt.Sprintf("%s %5.1fs", result, time.Since(stepStart).Seconds())
					})
					step.run(p, p.box(t))
				})
				if !ok {
					return
				}
			}
		})
	}
	steps := make([]string, len(pkgSteps))
	for i, step := range pkgSteps {
		steps[i] = step.name
	}
	t.Logf("%spackage lab took %v in all", resultTable("package step", steps, results), time.Since(start).Round(time.Millisecond))
}

// pkgLab is the state the steps of one distro share.
type pkgLab struct {
	m    *Machine
	port int
	// mainPid is drover's pid once the first request started myapp.service.
	mainPid int
	// cursor is the journal position before the install: evidence on
	// failure is the journal since then.
	cursor string
}

// box gives a step the lab's command and HTTP helpers on this machine.
// Unlike newBox it resets nothing: the steps build on each other.
func (p *pkgLab) box(t *testing.T) *box {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	b := &box{t: t, ctx: ctx, m: p.m, port: p.port, cursor: p.cursor}
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpEvidence()
		}
	})
	return b
}

// deb is the path inside of package name at version.
func deb(name, version string) string {
	return fmt.Sprintf("%s/%s/%s_%s-1_%s.deb", pkgDist, version, name, version, DebArch())
}

// long runs a command inside that may take longer than Output's 10s (dpkg
// and apt run maintainer scripts that stop and reload services), logs it
// with its output and fails the test if it exits non-zero.
func (b *box) long(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := b.m.Command(ctx, args...)
	cmd.Env = append(cmd.Env, "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	b.t.Logf("$ %s (took %v)\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), strings.TrimRight(out.String(), "\n"))
	if err != nil {
		b.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// pkgSteps run in this order on every distro.
var pkgSteps = []struct {
	name string
	run  func(*pkgLab, *box)
}{
	{"install", pkgInstall},
	{"upgrade-under-load", pkgUpgradeUnderLoad},
	{"drover-upgrade", pkgDroverUpgrade},
	{"remove", pkgRemove},
	{"purge", pkgPurge},
}

// pkgInstall: dpkg -i of drover and myapp into a container that has never
// seen them; postinst enables and starts myapp.socket, and the first
// connection starts myapp.service.
func pkgInstall(p *pkgLab, b *box) {
	for _, path := range []string{"/usr/bin/drover", "/usr/bin/myapp", "/usr/lib/systemd/system/myapp.socket"} {
		if _, code := b.try("test", "!", "-e", path); code != 0 {
			b.t.Fatalf("%s exists before the packages are installed: the container is not clean", path)
		}
	}
	// The shipped port (8080) may be taken on the host, whose network the
	// container shares: the admin's drop-in, written before the install as
	// an admin may, moves it. Packages never touch /etc/systemd/system.
	port, err := FreePort()
	if err != nil {
		b.t.Fatal(err)
	}
	b.port = port
	p.port = port
	b.write(SocketDropInPath, SocketDropIn(port))
	out, _ := b.quiet("journalctl", "-n", "1", "--show-cursor", "-q", "-o", "cat")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	b.cursor = strings.TrimPrefix(lines[len(lines)-1], "-- cursor: ")
	p.cursor = b.cursor

	b.long("dpkg", "-i", deb("drover", pkgRelease), deb("myapp", pkgRelease))
	b.sh("dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "drover", "myapp")
	st := b.showLogged("myapp.socket", "UnitFileState", "ActiveState", "Listen")
	if st["UnitFileState"] != "enabled" || st["ActiveState"] != "active" {
		b.t.Fatalf("after dpkg -i, myapp.socket is %s and %s; want enabled and active", st["UnitFileState"], st["ActiveState"])
	}
	if !strings.Contains(st["Listen"], fmt.Sprintf("127.0.0.1:%d", port)) {
		b.t.Fatalf("myapp.socket listens on %q, want 127.0.0.1:%d", st["Listen"], port)
	}
	if svc := b.showLogged("myapp.service", "ActiveState")["ActiveState"]; svc != "inactive" {
		b.t.Fatalf("myapp.service is %s before any connection; the package should start only the socket", svc)
	}
	r := b.getLogged(30 * time.Second)
	if r.Version != pkgRelease {
		b.t.Fatalf("answered by version %q, want %s", r.Version, pkgRelease)
	}
	b.waitFor("myapp.service to be active", 10*time.Second, func() (bool, string) {
		s := b.show("myapp.service", "ActiveState", "StatusText")
		return s["ActiveState"] == "active", fmt.Sprintf("ActiveState=%s StatusText=%q", s["ActiveState"], s["StatusText"])
	})
	p.mainPid = b.mainPid()
	if c := b.cmdline(p.mainPid); !strings.HasPrefix(c, "/usr/bin/drover run") {
		b.t.Fatalf("myapp.service's main process is %q, want the packaged drover", c)
	}
}

// pkgUpgradeUnderLoad: dpkg -i of the next myapp while the load generator
// runs. postinst reloads myapp.service: drover swaps in workers of the new
// binary; no request may fail, drover itself stays, and once the old
// workers drained only the new version answers.
func pkgUpgradeUnderLoad(p *pkgLab, b *box) {
	if p.mainPid == 0 {
		b.t.Fatal("install did not start myapp.service")
	}
	kids := b.children(p.mainPid)
	b.t.Logf("drover %d runs %d workers: %v", p.mainPid, len(kids), kids)

	ld := startLoad(b.port, "before the upgrade ("+pkgRelease+")")
	b.t.Cleanup(ld.Stop)
	b.t.Logf("load: keep-alive client as fast as answered, new-conn client every %v at most; bounded by %d/%d requests and %v", loadNewConnEvery, loadMaxKeepAlive, loadMaxNewConn, loadMaxDuration)
	b.waitLoad(ld, 50)

	upgrade := ld.Next(fmt.Sprintf("dpkg -i myapp %s, until the old workers drained", pkgUpgrade)) + 1
	b.long("dpkg", "-i", deb("myapp", pkgUpgrade))
	b.waitReplaced(p.mainPid, kids, 20*time.Second)
	after := ld.Next("after the upgrade: only "+pkgUpgrade+" may answer") + 1
	b.waitLoad(ld, 200)
	b.endLoad(ld)

	b.failedRequests(ld, after)
	ph := ld.Phase(after)
	for c, name := range clientNames {
		if ph.clients[c].ok == 0 {
			b.t.Errorf("%s: %s client got no answer", ph.name, name)
		}
		for v := range ph.clients[c].versions {
			if v != pkgUpgrade {
				b.t.Errorf("%s: %s client was answered by version %s, want only %s", ph.name, name, v, pkgUpgrade)
			}
		}
	}
	if len(ld.Phase(upgrade).clients[newConn].versions) == 0 {
		b.t.Errorf("no request was answered while dpkg ran")
	}
	b.sh("dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "myapp")
	st := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState", "StatusText")
	if st["MainPID"] != strconv.Itoa(p.mainPid) || st["ActiveState"] != "active" {
		b.t.Errorf("after the upgrade myapp.service is %s with MainPID %s; want active, still drover %d (a reload, not a restart)", st["ActiveState"], st["MainPID"], p.mainPid)
	}
	if r := b.getLogged(5 * time.Second); r.Version != pkgUpgrade || r.Generation != "2" {
		b.t.Errorf("after the upgrade, answered by version %s generation %s; want %s generation 2", r.Version, r.Generation, pkgUpgrade)
	}
}

// pkgRemove: apt-get remove stops the socket and the service (prerm);
// nothing of drover or myapp runs afterwards and the port is closed. The
// conffile stays until purge.
func pkgRemove(p *pkgLab, b *box) {
	b.long("apt-get", "remove", "-y", "myapp", "drover")
	b.sh("dpkg-query", "-W", "-f", "${Package} ${Status}\n", "drover", "myapp")
	for _, unit := range []string{"myapp.socket", "myapp.service"} {
		st := b.showLogged(unit, "LoadState", "ActiveState")
		if st["ActiveState"] != "inactive" || st["LoadState"] != "not-found" {
			b.t.Errorf("after apt-get remove, %s is %s/%s; want not-found/inactive", unit, st["LoadState"], st["ActiveState"])
		}
	}
	for _, name := range []string{"drover", "myapp"} {
		if out, code := b.try("pgrep", "-a", "-x", name); code != 1 {
			b.t.Errorf("after apt-get remove, %s still runs: %s", name, out)
		}
	}
	if alive := b.alive(p.mainPid); len(alive) > 0 {
		b.t.Errorf("after apt-get remove, drover %d still runs", p.mainPid)
	}
	if refused, err := dialRefused(b.port); !refused {
		b.t.Errorf("after apt-get remove, 127.0.0.1:%d does not refuse connections: %v", b.port, err)
	} else {
		b.t.Logf("127.0.0.1:%d refuses connections", b.port)
	}
	b.sh("ls", "-l", "/etc/myapp/myapp.conf")
	if status := b.sh("dpkg-query", "-W", "-f", "${Status}", "myapp"); status != "deinstall ok config-files" {
		b.t.Errorf("after remove, myapp's status is %q; want its conffile kept (deinstall ok config-files)", status)
	}
}

// pkgPurge: apt-get purge removes the conffiles, and myapp's postrm removes
// the enable links and deb-systemd-helper's record of them.
func pkgPurge(p *pkgLab, b *box) {
	b.sh("ls", "/etc/systemd/system/sockets.target.wants/")
	b.long("apt-get", "purge", "-y", "myapp", "drover")
	for _, pkg := range []string{"myapp", "drover"} {
		if _, code := b.try("dpkg-query", "-W", "-f", "${Status}", pkg); code == 0 {
			b.t.Errorf("after purge, dpkg still knows %s", pkg)
		}
	}
	for _, path := range []string{
		"/etc/myapp", "/etc/default/drover",
		"/etc/systemd/system/sockets.target.wants/myapp.socket",
		"/var/lib/systemd/deb-systemd-helper-enabled/myapp.socket.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/myapp.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/sockets.target.wants/myapp.socket",
		"/usr/bin/myapp", "/usr/bin/drover",
	} {
		if _, code := b.try("test", "!", "-e", path, "-a", "!", "-L", path); code != 0 {
			b.t.Errorf("after purge, %s is left", path)
		}
	}
	out := b.sh("sh", "-c", "find /etc /var/lib/systemd /usr/lib/systemd -name '*myapp*' -o -name '*drover*' | sort")
	// The admin's socket drop-in is the admin's: purge keeps it.
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, filepath.Dir(SocketDropInPath)) {
			b.t.Errorf("after purge, %s is left", line)
		}
	}
}
