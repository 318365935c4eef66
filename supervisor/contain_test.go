package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeConfig runs workers that each start n sleeping children, a setsid'd
// double-forked daemon, and then exec the test worker (keeping the pid).
// Every descendant's pid is written to children-<worker pid> in reports.
func treeConfig(t *testing.T, workers, n int) (Config, string) {
	cfg, reports := testConfig(t, workers, "report")
	script := fmt.Sprintf(`f=%s/children-$$
i=0; while [ $i -lt %d ]; do sleep 1000 & echo $! >> $f; i=$((i+1)); done
setsid sh -c 'sleep 1000 & echo $! >> "$0"' $f &
exec %s -mode report -report-dir %s`, reports, n, testworkerBin, reports)
	cfg.Command = []string{"/bin/sh", "-c", script}
	return cfg, reports
}

// childrenOf reads the descendant pids worker pid wrote, waiting until all
// want of them are there.
func childrenOf(t *testing.T, reports string, pid, want int) []int {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(filepath.Join(reports, "children-"+strconv.Itoa(pid)))
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		if len(pids) >= want {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d wrote %d child pids, want %d", pid, len(pids), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until every pid is gone and reaped (kill 0 succeeds on a
// zombie), checked by pid, never by name.
func waitGone(t *testing.T, what string, pids []int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for _, pid := range pids {
		for !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: process %d is still there", what, pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func killOnCleanup(t *testing.T, pids []int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
}

// Nothing a worker starts outlives it: not after kill -9, a reload or
// drover's stop; not a setsid'd daemon, not 50 children.
func TestWorkerTreeDiesWithWorker(t *testing.T) {
	for _, n := range []int{1, 50} {
		t.Run(fmt.Sprintf("children=%d", n), func(t *testing.T) {
			cfg, reports := treeConfig(t, 1, n)
			h := start(t, cfg, reports)
			h.sd.waitFor(t, "READY=1")
			first := only(t, h.reportsNow(t))
			kids := childrenOf(t, reports, first, n+1)
			killOnCleanup(t, kids)

			unix.Kill(first, unix.SIGKILL)
			waitGone(t, "after kill -9 of its worker", kids)
			second := newWorker(t, h, first)
			kids = childrenOf(t, reports, second, n+1)
			killOnCleanup(t, kids)

			if err := h.sup.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			waitGone(t, "after a reload", kids)
			third := newWorker(t, h, first, second)
			kids = childrenOf(t, reports, third, n+1)
			killOnCleanup(t, kids)

			if err := h.stop(t); err != nil {
				t.Fatal(err)
			}
			waitGone(t, "after drover's stop", kids)
		})
	}
}

func only(t *testing.T, reports map[int]report) int {
	t.Helper()
	if len(reports) != 1 {
		t.Fatalf("%d workers, want 1", len(reports))
	}
	for pid := range reports {
		return pid
	}
	return 0
}

// newWorker waits for a worker report from a pid not in old.
func newWorker(t *testing.T, h *harness, old ...int) int {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		for pid := range h.reportsNow(t) {
			isOld := false
			for _, o := range old {
				isOld = isOld || o == pid
			}
			if !isOld {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no new worker")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A recycled worker's tree goes with it, however its children left the
// process group.
func TestRecycledWorkerTreeDies(t *testing.T) {
	cfg, reports := treeConfig(t, 1, 3)
	cfg.MaxLifetime = 500 * time.Millisecond
	h := start(t, cfg, reports)
	h.sd.waitFor(t, "READY=1")
	first := only(t, h.reportsNow(t))
	kids := childrenOf(t, reports, first, 4)
	killOnCleanup(t, kids)
	h.waitLogged(t, "worker recycled", nil)
	waitGone(t, "after its worker was recycled", append(kids, first))
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
}
