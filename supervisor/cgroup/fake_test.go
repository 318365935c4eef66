package cgroup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// testLog sends the package's log lines to the test's output.
func testLog(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// fakeCgroup makes a directory with the interface files OpenAt reads.
// Writes to them are plain file writes: enough for the bookkeeping, not
// for the kernel's behaviour, which the real tests cover.
func fakeCgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	base := map[string]string{
		"cgroup.events":          "populated 1\nfrozen 0\n",
		"cgroup.procs":           "",
		"cgroup.controllers":     "cpu memory pids\n",
		"cgroup.subtree_control": "",
	}
	for k, v := range files {
		base[k] = v
	}
	for name, data := range base {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenAtFake(t *testing.T) {
	dir := fakeCgroup(t, nil)
	tree, err := OpenAt(testLog(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree.Controllers(); !slices.Equal(got, []string{"cpu", "memory", "pids"}) {
		t.Errorf("Controllers = %v", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, SupervisorLeaf)); err != nil || !fi.IsDir() {
		t.Errorf("no supervisor leaf: %v", err)
	}
	if tree.Dir() != dir {
		t.Errorf("Dir = %s, want %s", tree.Dir(), dir)
	}
}

func TestOpenAtNotCgroup(t *testing.T) {
	if _, err := OpenAt(testLog(t), t.TempDir()); !errors.Is(err, ErrNotDelegated) {
		t.Errorf("OpenAt(plain dir) err = %v, want ErrNotDelegated", err)
	}
}

func TestOpenAtNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere; the real root-cgroup test covers root")
	}
	dir := fakeCgroup(t, nil)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if _, err := OpenAt(testLog(t), dir); !errors.Is(err, ErrNotDelegated) {
		t.Errorf("OpenAt(read-only) err = %v, want ErrNotDelegated", err)
	}
}

func TestNewWorkerNames(t *testing.T) {
	tree, err := OpenAt(testLog(t), fakeCgroup(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", SupervisorLeaf, "cgroup.procs"} {
		if _, err := tree.NewWorker(bad); err == nil {
			t.Errorf("NewWorker(%q) succeeded", bad)
		}
	}
	if _, err := tree.NewWorker("worker-0-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.NewWorker("worker-0-1"); !errors.Is(err, os.ErrExist) {
		t.Errorf("second NewWorker err = %v, want ErrExist", err)
	}
}

func TestStatsFake(t *testing.T) {
	tree, err := OpenAt(testLog(t), fakeCgroup(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	w, err := tree.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.MemoryCurrent(); ok {
		t.Error("MemoryCurrent ok without memory.current")
	}
	write(t, w.file("memory.current"), "123456\n")
	write(t, w.file("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
	if n, ok := w.MemoryCurrent(); !ok || n != 123456 {
		t.Errorf("MemoryCurrent = %d, %v", n, ok)
	}
	if d, ok := w.CPUUsage(); !ok || d != 1500*time.Microsecond {
		t.Errorf("CPUUsage = %v, %v", d, ok)
	}
	write(t, w.file("cgroup.procs"), "12\n34\n")
	if pids, err := w.Procs(); err != nil || !slices.Equal(pids, []int{12, 34}) {
		t.Errorf("Procs = %v, %v", pids, err)
	}
}

// WaitEmpty wakes on a modification of cgroup.events, which inotify reports
// on any filesystem; the real test shows the kernel's cgroupfs does too.
func TestWaitEmptyFake(t *testing.T) {
	tree, err := OpenAt(testLog(t), fakeCgroup(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	w, err := tree.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.file("cgroup.events"), "populated 1\nfrozen 0\n")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.WaitEmpty(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEmpty on a populated cgroup = %v, want DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.WaitEmpty(t.Context()) }()
	select {
	case err := <-done:
		t.Fatalf("WaitEmpty returned %v while populated", err)
	case <-time.After(20 * time.Millisecond):
	}
	// In place, in one write, as the kernel changes it: a truncation
	// would wake WaitEmpty on an empty file, which cgroupfs never shows.
	if err := writeFile(w.file("cgroup.events"), "populated 0\nfrozen 0\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitEmpty did not see populated 0")
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
