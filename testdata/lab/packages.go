package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// MakeDebs runs `make deb` for version into dir/dist/VERSION, building in
// dir/bin-VERSION: the lab tests the same target users run.
func MakeDebs(ctx context.Context, root, dir, version string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "deb",
		"PKG_VERSION="+version,
		"BIN="+filepath.Join(dir, "bin-"+version),
		"DIST="+filepath.Join(dir, "dist", version))
	// A make test above us passes its command-line variables down in
	// MAKEFLAGS; this build has its own.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make deb PKG_VERSION=%s: %w\n%s", version, err, out.String())
	}
	return nil
}

// DebArch is dpkg's name for the architecture the packages were built for.
func DebArch() string {
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}
