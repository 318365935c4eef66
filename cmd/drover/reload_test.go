package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/droverd/drover/testdata/testbin"
)

// buildExample builds the example worker with a version stamp.
func buildExample(t *testing.T, version string) string {
	return buildStamped(t, "../../testdata/example-worker", "example", version)
}

// buildStamped builds the program in dir with main.version set.
func buildStamped(t *testing.T, dir, name, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+"-"+version)
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, dir)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s %s: %v\n%s", name, version, err, b)
	}
	return out
}

// install copies src over dst by rename, as a package manager does.
func install(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".new", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		t.Fatal(err)
	}
}

var versionRE = regexp.MustCompile(`version=(\S+)`)

func versionOf(t *testing.T, addr string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := versionRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no version in %q", b)
	}
	return string(m[1])
}

// Reloads under load lose no request, and a broken build is refused while
// the old version keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	app, control := filepath.Join(dir, "myapp"), filepath.Join(dir, "control.sock")
	install(t, buildExample(t, "v1"), app)
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "2", "--control", control, "--", app)
	addr := regexp.MustCompile(`sockets="?([0-9.:]+)`).FindStringSubmatch(p.stderr.waitFor(t, "starting workers"))[1]
	p.stderr.waitFor(t, "all 2 workers ready")

	l := testbin.StartLoad(addr)
	for _, v := range []string{"v2", "v3"} {
		install(t, buildExample(t, v), app)
		out, err := exec.Command(bin.drover, "reload", "--control", control).CombinedOutput()
		if err != nil {
			t.Fatalf("drover reload to %s: %v\n%s", v, err, out)
		}
	}
	// Keep the load on until the last old workers have drained.
	p.stderr.waitForAll(t, 2, `msg="worker exited"`, "generation=2 ")
	l.End(t)
	for range 20 {
		if v := versionOf(t, addr); v != "v3" {
			t.Fatalf("after the last reload version %s answered, want v3", v)
		}
	}

	l = testbin.StartLoad(addr)
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho broken build >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, broken, app)
	out, err := exec.Command(bin.drover, "reload", "--control", control).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "reload failed: worker 0 of generation 4") {
		t.Errorf("drover reload of a broken build: %v, %q; want exit 1 with the reason", err, out)
	}
	l.End(t)
	if v := versionOf(t, addr); v != "v3" {
		t.Errorf("after the failed reload version %s answered, want v3", v)
	}
}

// drover reload explains what is wrong when it cannot reach drover.
func TestReloadWithoutDrover(t *testing.T) {
	out, err := exec.Command(bin.drover, "reload", "--control", filepath.Join(t.TempDir(), "none.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "connect to drover at") {
		t.Errorf("got %v %q", err, out)
	}
	cmd := exec.Command(bin.drover, "reload")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no control socket") {
		t.Errorf("got %v %q", err, out)
	}
}

// The README's Node.js example of the drain contract, run for real: Node
// takes fd 3 unchanged, and reloads under load lose no request.
func TestNodeWorkerReloadUnderLoad(t *testing.T) {
	node := testbin.Tool(t, "node")
	control := filepath.Join(t.TempDir(), "control.sock")
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "2", "--control", control, "--", node, "../../testdata/node-worker/server.js")
	addr := regexp.MustCompile(`sockets="?([0-9.:]+)`).FindStringSubmatch(p.stderr.waitFor(t, "starting workers"))[1]
	p.stderr.waitFor(t, "all 2 workers ready")

	l := testbin.StartLoad(addr)
	for range 2 {
		if out, err := exec.Command(bin.drover, "reload", "--control", control).CombinedOutput(); err != nil {
			t.Fatalf("drover reload: %v\n%s", err, out)
		}
	}
	p.stderr.waitForAll(t, 2, `msg="worker exited"`, "generation=2 ")
	l.End(t)
}
