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

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// SupervisorLeaf is the child cgroup drover itself moves into, so that our
// own cgroup holds no processes and may hand controllers to its children.
const SupervisorLeaf = "supervisor"

// removeTimeout bounds how long Remove and Close wait for the kernel to let
// go of an emptied cgroup.
const removeTimeout = 2 * time.Second

// ErrPopulated says a cgroup still holds processes, so it was left in place.
var ErrPopulated = errors.New("cgroup still has processes")

// Tree is drover's delegated cgroup v2 subtree. Its methods are safe for
// concurrent use.
type Tree struct {
	dir         string
	controllers []string
	log         logrus.FieldLogger

	mu      sync.Mutex
	workers map[string]*Worker
	closed  bool
}

// Open takes over the cgroup we run in: Detect, then OpenAt. An error
// wrapping ErrNotDelegated means there is no subtree to use (log it once
// and fall back); any other error means the subtree looked usable but
// setting it up failed.
func Open(log logrus.FieldLogger) (*Tree, error) {
	loc, err := Detect("/")
	if err != nil {
		return nil, err
	}
	if loc.Path == "/" {
		// Moving "every process of our cgroup" would move the whole
		// machine: the root is never delegated.
		return nil, fmt.Errorf("%w: we run in the root of the cgroup hierarchy at %s", ErrNotDelegated, loc.Mount)
	}
	return OpenAt(log.WithField("hybrid", loc.Hybrid), loc.Dir)
}

// OpenAt takes over the cgroup v2 directory dir as ours: it creates the
// supervisor leaf, moves every process found in dir into it, and enables in
// dir's cgroup.subtree_control each controller that dir's
// cgroup.controllers offers, keeping those the kernel accepts. Tests, and a
// caller that knows its cgroup, use it directly. log must not be nil.
func OpenAt(log logrus.FieldLogger, dir string) (*Tree, error) {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.events")); err != nil {
		// The root cgroup has no cgroup.events; neither has a non-cgroup2
		// directory.
		return nil, fmt.Errorf("%w: %s is not a non-root cgroup v2 directory: %w", ErrNotDelegated, dir, err)
	}
	leaf := filepath.Join(dir, SupervisorLeaf)
	if err := unix.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		// EACCES, EPERM, EROFS: the directory is not ours to divide,
		// which is what a missing Delegate=yes looks like.
		return nil, fmt.Errorf("%w: cannot create %s: %w", ErrNotDelegated, leaf, err)
	}
	t := &Tree{dir: dir, log: log.WithField("cgroup", dir), workers: map[string]*Worker{}}
	moved, err := t.adoptProcs(leaf)
	if err != nil {
		return nil, err
	}
	t.controllers = t.enableControllers()
	t.log.WithFields(logrus.Fields{
		"controllers":    strings.Join(t.controllers, " "),
		"moved":          moved,
		"delegate_xattr": hasDelegateXattr(dir),
	}).Info("cgroup delegated: each worker gets its own cgroup")
	return t, nil
}

// adoptProcs moves every process of our cgroup into the leaf: drover, and
// whatever else systemd or a previous run left there. Processes may fork
// while we move them, so it repeats until our cgroup is empty.
func (t *Tree) adoptProcs(leaf string) (moved int, err error) {
	procs := filepath.Join(t.dir, "cgroup.procs")
	for range 20 {
		pids, err := readPids(procs)
		if err != nil {
			return moved, fmt.Errorf("list processes of %s: %w", t.dir, err)
		}
		if len(pids) == 0 {
			return moved, nil
		}
		for _, pid := range pids {
			err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid))
			if errors.Is(err, unix.ESRCH) {
				continue // exited meanwhile
			}
			if err != nil {
				return moved, fmt.Errorf("move pid %d into %s: %w", pid, leaf, err)
			}
			moved++
		}
	}
	return moved, fmt.Errorf("move processes out of %s: new ones keep appearing", t.dir)
}

// enableControllers turns on, one by one, what our parent gave us: one that
// the kernel refuses (threaded mode, a controller bound to v1) must not keep
// the others off.
func (t *Tree) enableControllers() []string {
	data, err := os.ReadFile(filepath.Join(t.dir, "cgroup.controllers"))
	if err != nil {
		t.log.WithError(err).Warn("cannot read the controllers our cgroup offers; workers get none")
		return nil
	}
	var on []string
	for _, c := range strings.Fields(string(data)) {
		if err := writeFile(filepath.Join(t.dir, "cgroup.subtree_control"), "+"+c); err != nil {
			t.log.WithError(err).WithField("controller", c).Debug("controller not enabled for workers")
			continue
		}
		on = append(on, c)
	}
	return on
}

// hasDelegateXattr reports systemd's delegation marker (systemd.io
// CGROUP_DELEGATION). Informational only: see the package doc.
func hasDelegateXattr(dir string) bool {
	for _, attr := range []string{"trusted.delegate", "user.delegate"} {
		if n, err := unix.Getxattr(dir, attr, nil); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// Dir is our cgroup's directory.
func (t *Tree) Dir() string { return t.dir }

// Controllers lists the controllers enabled for the workers' cgroups.
func (t *Tree) Controllers() []string { return append([]string(nil), t.controllers...) }

// NewWorker creates the child cgroup name for one worker. The caller picks
// unique names (e.g. "worker-<slot>-<seq>"); an existing one is an error
// wrapping fs.ErrExist, since its processes would be mistaken for the new
// worker's.
func (t *Tree) NewWorker(name string) (*Worker, error) {
	if name == "" || name == "." || name == ".." || name == SupervisorLeaf ||
		strings.ContainsRune(name, '/') || strings.HasPrefix(name, "cgroup.") {
		return nil, fmt.Errorf("create worker cgroup %q: invalid name", name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("create worker cgroup %q: tree closed", name)
	}
	w, err := newWorker(t, filepath.Join(t.dir, name))
	if err != nil {
		return nil, err
	}
	t.workers[name] = w
	return w, nil
}

func (t *Tree) forget(w *Worker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.workers, filepath.Base(w.dir))
}

// Close removes every worker cgroup left below our cgroup that is empty,
// ours or a previous run's, and releases the workers' handles. A populated
// one is left in place and reported with ErrPopulated: killing is the
// caller's decision. Close does not move drover out of the supervisor leaf.
func (t *Tree) Close() error {
	t.mu.Lock()
	t.closed = true
	workers := t.workers
	t.workers = map[string]*Worker{}
	t.mu.Unlock()
	for _, w := range workers {
		w.closeFD()
	}
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("list worker cgroups in %s: %w", t.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || e.Name() == SupervisorLeaf {
			continue
		}
		dir := filepath.Join(t.dir, e.Name())
		busy, err := populated(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("check worker cgroup %s: %w", dir, err))
			continue
		}
		if busy {
			errs = append(errs, fmt.Errorf("leave worker cgroup %s: %w", dir, ErrPopulated))
			continue
		}
		if err := removeDir(dir, removeTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AdoptWorker takes the existing cgroup name of a worker an earlier
// drover image started (drover upgrade).
func (t *Tree) AdoptWorker(name string) (*Worker, error) {
	dir := filepath.Join(t.dir, name)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt worker cgroup %s: %w", dir, err)
	}
	w := &Worker{tree: t, dir: dir, fd: fd}
	t.mu.Lock()
	t.workers[name] = w
	t.mu.Unlock()
	return w, nil
}
