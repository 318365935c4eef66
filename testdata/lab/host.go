package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Logf is where the lab says what it is doing (t.Logf, log.Printf).
type Logf func(format string, args ...any)

// hostTools maps each program the lab runs on the host to the Debian
// package that has it.
var hostTools = map[string]string{
	"systemd-nspawn": "systemd-container",
	"debootstrap":    "debootstrap",
	"nsenter":        "util-linux",
}

// EnsureTools installs the host packages the lab needs when a program is
// missing. It needs root, like everything else here.
func EnsureTools(ctx context.Context, logf Logf) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: it runs debootstrap and systemd-nspawn")
	}
	var missing []string
	for prog, pkg := range hostTools {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing %s", strings.Join(missing, " "))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if out, err := run(ctx, nil, "apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, out)
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(missing, " "), err, out)
	}
	return nil
}

// run runs a host command and returns its combined output.
func run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// RepoRoot finds the module root (where go.mod is) from the working
// directory: tests run in testdata/lab, lab-shell from the root.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no go.mod above %s", dir)
		}
	}
}

// Build is what the lab installs into every container.
type Build struct {
	Dir string // holds all of the below, readable by every user
	// Drover, Myapp (example-worker) and Testworker are static binaries.
	Drover, Myapp, Testworker string
	// Socket and Service are snapshots of units/, taken at build time so a
	// run is consistent even if units/ is edited meanwhile.
	Socket, Service string
	Version         string // example-worker's main.version
	// Upgrades are more builds of example-worker, Upgrades[i] with
	// main.version=UpgradeVersion(i): the new versions reload-under-load
	// installs one after another.
	Upgrades []string
	// Broken is a "new version" of myapp that cannot start: a script that
	// says so on stderr and exits 1.
	Broken string
	// NodeWorker is testdata/node-worker/server.js.
	NodeWorker string
	// NodeApps is testdata/node-apps, unmodified Node apps (issue 15).
	NodeApps string
	// NodeModules is a node_modules directory with npmPackages from the
	// npm registry (testbin.NodeModules), or "" when npm is missing: then
	// the scenarios that need it skip. TestLab sets it before the boot.
	NodeModules string
	// Prometheus is the server from Debian's prometheus package, unpacked
	// on the host (make deps; testdata/tools/unpack-deb.sh).
	Prometheus string
}

// NodeWorkerPath is where containers have testdata/node-worker/server.js.
const NodeWorkerPath = "/usr/lib/drover-lab/node-worker.js"

// NodeAppsPath is where containers have testdata/node-apps, and
// NodeModulesPath its node_modules: next to it, where Node's require()
// looks from an app in NodeAppsPath (no NODE_PATH needed).
const (
	NodeAppsPath    = "/usr/lib/drover-lab/node-apps"
	NodeModulesPath = "/usr/lib/drover-lab/node_modules"
)

// PrometheusPath is where containers have the Prometheus server.
const PrometheusPath = "/usr/lib/drover-lab/prometheus"

// prometheusDir is where make deps unpacks Debian's prometheus package.
const prometheusDir = "/var/cache/drover-tools/prometheus"

// findPrometheus returns the unpacked Prometheus server, unpacking it
// first when the lab runs without make deps.
func findPrometheus(ctx context.Context, root string) (string, error) {
	path := filepath.Join(prometheusDir, "usr/bin/prometheus")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if out, err := run(ctx, nil, filepath.Join(root, "testdata/tools/unpack-deb.sh"), "prometheus", prometheusDir); err != nil {
		return "", fmt.Errorf("unpack Debian's prometheus package: %w\n%s", err, out)
	}
	return path, nil
}

// upgrades is how many new builds of example-worker BuildAll makes.
const upgrades = 5

// UpgradeVersion is the main.version of Build.Upgrades[i]: v1, v2, ...
func UpgradeVersion(i int) string { return fmt.Sprintf("v%d", i+1) }

// brokenMyapp is Build.Broken.
const brokenMyapp = `#!/bin/sh
# A broken build of myapp, installed by the drover lab: it cannot start.
echo "myapp: broken build, cannot start" >&2
exit 1
`

// BuildAll builds drover, the example worker and testworker with
// CGO_ENABLED=0 (they run inside other Debian releases) into a new
// directory under dir, and copies the shipped units next to them.
func BuildAll(ctx context.Context, root, dir string) (*Build, error) {
	out, err := os.MkdirTemp(dir, "drover-lab-build-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	// The container's users (DynamicUser=) need to reach nothing here:
	// files are bind-mounted one by one. 0755 still keeps `ls` honest.
	if err := os.Chmod(out, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	version := "lab-" + time.Now().UTC().Format("20060102T150405")
	b := &Build{
		Dir:        out,
		Drover:     filepath.Join(out, "drover"),
		Myapp:      filepath.Join(out, "myapp"),
		Testworker: filepath.Join(out, "testworker"),
		Socket:     filepath.Join(out, "myapp.socket"),
		Service:    filepath.Join(out, "myapp.service"),
		Version:    version,
	}
	for i := range upgrades {
		b.Upgrades = append(b.Upgrades, filepath.Join(out, "myapp-"+UpgradeVersion(i)))
	}
	b.NodeWorker = filepath.Join(root, "testdata/node-worker/server.js")
	b.NodeApps = filepath.Join(root, "testdata/node-apps")
	if b.Prometheus, err = findPrometheus(ctx, root); err != nil {
		return nil, err
	}
	b.Broken = filepath.Join(out, "myapp-broken")
	if err := os.WriteFile(b.Broken, []byte(brokenMyapp), 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	goTool, err := exec.LookPath("go")
	if err != nil {
		// go test puts GOROOT/bin on PATH; a bare shell may not have it.
		goTool = "/usr/local/go/bin/go"
	}
	type target struct{ out, pkg, ldflags string }
	targets := []target{
		{b.Drover, "./cmd/drover", "-X main.version=" + version},
		{b.Myapp, "./testdata/example-worker", "-X main.version=" + version},
		{b.Testworker, "./testdata/testworker", ""},
	}
	for i, path := range b.Upgrades {
		targets = append(targets, target{path, "./testdata/example-worker", "-X main.version=" + UpgradeVersion(i)})
	}
	// In parallel: the upgrades differ only in what the linker writes.
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, goTool, "build", "-ldflags", target.ldflags, "-o", target.out, target.pkg)
			cmd.Dir = root
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build -ldflags %q %s: %w\n%s", target.ldflags, target.pkg, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, u := range []struct{ from, to string }{
		{filepath.Join(root, "units", "myapp.socket"), b.Socket},
		{filepath.Join(root, "units", "myapp.service"), b.Service},
	} {
		data, err := os.ReadFile(u.from)
		if err != nil {
			return nil, fmt.Errorf("copy unit: %w", err)
		}
		if err := os.WriteFile(u.to, data, 0o644); err != nil {
			return nil, fmt.Errorf("copy unit: %w", err)
		}
	}
	return b, nil
}

// Binds says where each built file goes inside a container: where a
// package would put it.
func (b *Build) Binds() []Bind {
	binds := []Bind{
		{b.Drover, "/usr/bin/drover", false},
		// A file of the container's own, so that a scenario can upgrade it
		// by rename as a package manager does (a bind mount cannot be
		// renamed over).
		{b.Myapp, MyappPath, true},
		{b.Testworker, TestworkerPath, false},
		{b.Prometheus, PrometheusPath, false},
		{b.NodeWorker, NodeWorkerPath, false},
		{b.Socket, "/usr/lib/systemd/system/myapp.socket", false},
		{b.Service, "/usr/lib/systemd/system/myapp.service", false},
		{b.NodeApps, NodeAppsPath, false},
	}
	if b.NodeModules != "" {
		binds = append(binds, Bind{b.NodeModules, NodeModulesPath, false})
	}
	return binds
}

// MyappPath is where containers have the worker program of the shipped
// unit (example-worker).
const MyappPath = "/usr/bin/myapp"

// TestworkerPath is where containers have testworker.
const TestworkerPath = "/usr/lib/drover-lab/testworker"

// FreePort asks the kernel for a free TCP port on 127.0.0.1. The containers
// share the host's network, so the port is free for them too, and a fresh
// one per scenario keeps scenarios (and parallel runs) apart.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SocketDropIn is the drop-in that moves myapp.socket to 127.0.0.1:port:
// the shipped unit's port may be taken on the host, whose network the
// containers share.
func SocketDropIn(port int) string {
	return fmt.Sprintf("# Written by the drover lab: a free port on the host's network.\n[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n", port)
}

// SocketDropInPath is where SocketDropIn goes inside a container.
const SocketDropInPath = "/etc/systemd/system/myapp.socket.d/lab-port.conf"
