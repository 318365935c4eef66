// Package testbin builds the programs tests run as real processes (drover
// itself, the test worker, the example worker) once per test binary, the
// way os/exec's tests make their helpers: from TestMain, into a temporary
// directory that Main removes when the tests are done.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// The packages tests build, by import path.
const (
	Drover        = "github.com/droverd/drover/cmd/drover"
	Testworker    = "github.com/droverd/drover/testdata/testworker"
	ExampleWorker = "github.com/droverd/drover/testdata/example-worker"
)

// Main builds pkgs, stores each binary's path in the string its key points
// to, runs the tests and exits. The binaries are static (CGO_ENABLED=0) and
// built without -race whatever the tests use: drover is the trampoline that
// every worker passes through, and a race-enabled runtime opens fds that
// would leak into workers and hide a real leak.
func Main(m interface{ Run() int }, pkgs map[*string]string) {
	dir, err := os.MkdirTemp("", "drover-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		os.Exit(1)
	}
	if err := build(dir, pkgs); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "testbin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string, pkgs map[*string]string) error {
	for out, pkg := range pkgs {
		*out = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", *out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
		}
	}
	return nil
}
