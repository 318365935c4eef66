package lab

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/testbin"
)

func TestMain(m *testing.M) {
	// t.Cleanup does not run when the test binary is interrupted: tear the
	// containers down ourselves.
	HandleInterrupts(syscall.SIGINT, syscall.SIGTERM)
	os.Exit(m.Run())
}

// scenarios run in this order on every distro, each from a reset state
// (box.reset): units stopped, drop-ins removed, a fresh port.
var scenarios = []struct {
	name string
	run  func(*box)
}{
	{"verify", testVerify},
	{"security", testSecurity},
	{"socket-activation", testSocketActivation},
	{"ready-gating", testReadyGating},
	{"handoff", testHandoff},
	{"cgroup", testCgroup},
	{"worker-kill", testWorkerKill},
	{"containment", testContainment},
	{"drover-kill", testDroverKill},
	{"stop", testStop},
	{"never-ready", testNeverReady},
	{"missing-binary", testMissingBinary},
	{"watchdog", testWatchdog},
	{"reload-under-load", testReloadUnderLoad},
	{"notify-reload", testNotifyReload},
	{"journal", testJournal},
	{"journal-burst", testJournalBurst},
	{"journal-burst-all", testJournalBurstAll},
	{"journal-quick-exit", testJournalQuickExit},
	{"health", testHealth},
	// surroundings_test.go: what drover must survive (issue 12).
	{"journald-stuck", testJournaldStuck},
	{"journald-gone", testJournaldGone},
	{"kill-during-reload", testKillDuringReload},
	// operator_test.go: drover status, scale and init.
	{"status", testStatus},
	{"scale", testScale},
	{"init", testInit},
	{"metrics", testMetrics},
	// node_test.go: Node apps (issue 15).
	{"node-jit", testNodeJIT},
	// node_apps_test.go: unmodified Node apps from a PM2 ecosystem file.
	{"node-pm2", testNodePM2},
	{"node-hang", testNodeHang},
}

// TestLab boots each distro in turn and runs every scenario in it, then
// prints a table of the results.
func TestLab(t *testing.T) {
	if testing.Short() {
		t.Skip("the real-systemd lab boots containers; skipped with -short")
	}
	start := time.Now()
	ctx := t.Context()
	env := setUp(t, "drover-lab-")
	root, dir := env.root, env.dir
	build, err := BuildAll(ctx, root, dir)
	rootfs := env.rootfs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("set up in %v: drover, example-worker and testworker built (version %s) into %s", time.Since(start).Round(time.Millisecond), build.Version, build.Dir)
	// Express from the npm registry, for the Node scenarios: bound into the
	// containers at boot, so it must be there before.
	if _, ok := testbin.LookTool("npm"); ok || testbin.Required() {
		build.NodeModules = testbin.NodeModules(t, npmPackages...)
		t.Logf("%s from npm in %s, bound at %s", strings.Join(npmPackages, " and "), build.NodeModules, NodeModulesPath)
	} else {
		t.Logf("npm not found (make deps): the scenarios that need express skip")
	}

	results := map[string]map[string]string{} // scenario -> distro -> result
	var measured []string                     // what the scenarios reported
	for i, d := range Distros {
		t.Run(d.Name, func(t *testing.T) {
			bootStart := time.Now()
			m, err := Boot(ctx, d, rootfs[i], build.Binds(), dir, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := m.Shutdown(); err != nil {
					t.Error(err)
				}
				t.Logf("%s: powered off in %v; booted, tested and powered off in %v", d.Name, m.PoweroffTook.Round(time.Millisecond), time.Since(bootStart).Round(time.Millisecond))
			})
			out, _ := m.Output(ctx, "systemctl", "--version")
			t.Logf("$ systemctl --version\n%s", firstLine(out))
			if !strings.HasPrefix(out, fmt.Sprintf("systemd %d ", d.Systemd)) {
				t.Errorf("%s runs %q, want systemd %d", d.Name, firstLine(out), d.Systemd)
			}
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					scStart := time.Now()
					t.Cleanup(func() {
						result := "PASS"
						switch {
						case t.Failed():
							result = "FAIL"
						case t.Skipped():
							result = "SKIP"
						}
						if results[sc.name] == nil {
							results[sc.name] = map[string]string{}
						}
						results[sc.name][d.Name] = fmt.Sprintf("%s %5.1fs", result, time.Since(scStart).Seconds())
					})
					b := newBox(t, m, build)
					b.measured = func(line string) {
						measured = append(measured, fmt.Sprintf("%s %s: %s", d.Name, sc.name, line))
					}
					sc.run(b)
				})
			}
		})
	}
	names := make([]string, len(scenarios))
	for i, sc := range scenarios {
		names[i] = sc.name
	}
	summary := resultTable("scenario", names, results)
	if len(measured) > 0 {
		summary += "measured:\n  " + strings.Join(measured, "\n  ") + "\n"
	}
	t.Log(summary + fmt.Sprintf("lab took %v in all", time.Since(start).Round(time.Millisecond)))
}

// resultTable formats per-row (scenario or step), per-distro results.
func resultTable(title string, rows []string, results map[string]map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-20s", title)
	for _, d := range Distros {
		fmt.Fprintf(&b, "  %-22s", fmt.Sprintf("%s (systemd %d)", d.Name, d.Systemd))
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "%-20s", row)
		for _, d := range Distros {
			r := results[row][d.Name]
			if r == "" {
				r = "not run"
			}
			fmt.Fprintf(&b, "  %-22s", r)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// labSetUp is what TestLab and TestPackages share: the tools, the root
// filesystems (built in parallel on the first run, as they mostly wait on
// the network) and a work directory.
type labSetUp struct {
	root, dir string
	// rootfs waits for the root filesystems, failing the test if one could
	// not be built.
	rootfs func() []string
}

func setUp(t *testing.T, dirPrefix string) labSetUp {
	t.Helper()
	ctx := t.Context()
	if err := EnsureTools(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := make([]string, len(Distros))
	errs := make([]error, len(Distros))
	var wg sync.WaitGroup
	for i, d := range Distros {
		wg.Go(func() { rootfs[i], errs[i] = EnsureRootfs(ctx, d, t.Logf) })
	}
	// Not t.TempDir: an interrupt ends the process without t.Cleanup, and
	// the build and console logs should go then too.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		wg.Wait()
		t.Fatal(err)
	}
	cancelRemove := OnInterrupt(func() { os.RemoveAll(dir) })
	t.Cleanup(func() {
		wg.Wait()
		os.RemoveAll(dir)
		cancelRemove()
	})
	return labSetUp{root: root, dir: dir, rootfs: func() []string {
		t.Helper()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return rootfs
	}}
}
