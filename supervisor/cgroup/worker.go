package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Worker is one worker's cgroup. Its methods are safe for concurrent use.
type Worker struct {
	tree *Tree
	dir  string

	mu sync.Mutex
	fd int // -1 once closed
}

func newWorker(t *Tree, dir string) (*Worker, error) {
	if err := unix.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = fs.ErrExist
		}
		return nil, fmt.Errorf("create worker cgroup %s: %w", dir, err)
	}
	// O_PATH is all CLONE_INTO_CGROUP needs; it keeps no file open.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Rmdir(dir)
		return nil, fmt.Errorf("open worker cgroup %s: %w", dir, err)
	}
	return &Worker{tree: t, dir: dir, fd: fd}, nil
}

// Name is the cgroup's name in its tree.
func (w *Worker) Name() string { return filepath.Base(w.dir) }

// Path is the cgroup's directory.
func (w *Worker) Path() string { return w.dir }

// FD is a descriptor of the cgroup's directory for
// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: w.FD()}, which starts a
// process inside the cgroup (clone3 with CLONE_INTO_CGROUP, Linux 5.7+). It
// stays valid until Remove succeeds or the tree is closed; -1 after that.
// Where the kernel lacks clone3 or CLONE_INTO_CGROUP, os/exec's Start fails
// (Go does not fall back): start without it and Add.
func (w *Worker) FD() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fd
}

func (w *Worker) closeFD() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

func (w *Worker) file(name string) string { return filepath.Join(w.dir, name) }

// Add moves a running process (all its threads) into the cgroup. Children it
// forked before the move stay where they are: prefer FD.
func (w *Worker) Add(pid int) error {
	if err := writeFile(w.file("cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, w.dir, err)
	}
	return nil
}

// Procs lists the processes in the cgroup itself (not in sub-cgroups a
// process may have made), in no particular order.
func (w *Worker) Procs() ([]int, error) {
	pids, err := readPids(w.file("cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("list processes of %s: %w", w.dir, err)
	}
	return pids, nil
}

// Populated reports whether the cgroup or a sub-cgroup holds a live process.
func (w *Worker) Populated() (bool, error) {
	p, err := populated(w.dir)
	if err != nil {
		return false, fmt.Errorf("read state of %s: %w", w.dir, err)
	}
	return p, nil
}

// Remove deletes the cgroup (and any empty sub-cgroup below it) and closes
// FD. It fails at once with ErrPopulated while processes are left: Kill and
// WaitEmpty first. Removing a cgroup that is already gone is no error.
func (w *Worker) Remove() error {
	busy, err := populated(w.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", w.dir, err)
	}
	if busy {
		return fmt.Errorf("remove cgroup %s: %w", w.dir, ErrPopulated)
	}
	if err := removeDir(w.dir, removeTimeout); err != nil {
		return err
	}
	w.closeFD()
	w.tree.forget(w)
	return nil
}

// MemoryCurrent is the cgroup's memory use in bytes (memory.current). ok is
// false when the memory controller is not on for workers, as in hybrid mode.
func (w *Worker) MemoryCurrent() (bytes int64, ok bool) {
	data, err := os.ReadFile(w.file("memory.current"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// CPUUsage is the CPU time the cgroup's processes used, dead ones included
// (cpu.stat usage_usec, which the kernel keeps without the cpu controller).
// ok is false only when cpu.stat cannot be read.
func (w *Worker) CPUUsage() (time.Duration, bool) {
	v, found, err := readKey(w.file("cpu.stat"), "usage_usec")
	if err != nil || !found {
		return 0, false
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}
