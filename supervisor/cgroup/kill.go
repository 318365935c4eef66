package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// killTimeout bounds Kill's fallback, which sends signals itself.
const killTimeout = 5 * time.Second

// Kill sends SIGKILL to every process in the cgroup and its sub-cgroups,
// wherever they moved in the process tree (double-forked, setsid'd). With
// cgroup.kill (Linux 5.14+) the kernel does it at once and Kill returns
// while the processes may still be exiting: WaitEmpty tells when they are
// gone. Without it, Kill freezes the cgroup so nothing in it can fork, kills
// every pid it lists until the cgroup is empty, and thaws it.
func (w *Worker) Kill() error {
	err := writeFile(w.file("cgroup.kill"), "1")
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kill cgroup %s: %w", w.dir, err)
	}
	return w.killFrozen(killTimeout)
}

// killFrozen is Kill for kernels before 5.14. Freezing takes effect
// asynchronously, so it does not wait for "frozen 1": a process that forks
// before it stops puts the child in the same cgroup, where the next round
// finds it. Frozen tasks still die of SIGKILL. Without cgroup.freeze (before
// 5.2) the rounds alone race against forks, and usually win.
func (w *Worker) killFrozen(timeout time.Duration) error {
	freeze := w.file("cgroup.freeze")
	if err := writeFile(freeze, "1"); err == nil {
		// An empty frozen cgroup would freeze whatever is added next.
		defer writeFile(freeze, "0")
	}
	deadline := time.Now().Add(timeout)
	for {
		busy, err := populated(w.dir)
		if err != nil {
			return fmt.Errorf("kill cgroup %s: %w", w.dir, err)
		}
		if !busy {
			return nil
		}
		pids, err := procsBelow(w.dir)
		if err != nil {
			return fmt.Errorf("kill cgroup %s: %w", w.dir, err)
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill pid %d of cgroup %s: %w", pid, w.dir, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill cgroup %s: %d processes left after %v", w.dir, len(pids), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// procsBelow lists the processes of dir and of every cgroup below it.
func procsBelow(dir string) ([]int, error) {
	pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // removed meanwhile
	}
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() {
			sub, err := procsBelow(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			pids = append(pids, sub...)
		}
	}
	return pids, nil
}
