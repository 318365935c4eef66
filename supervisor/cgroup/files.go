package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// writeFile writes one value to a cgroup interface file. Interface files
// exist already: no O_CREATE, so a missing file (an old kernel, a controller
// that is off) reports fs.ErrNotExist instead of littering the directory.
// The kernel answers each write(2) on its own, so the value goes in one call.
func writeFile(name, value string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// readPids parses cgroup.procs: one pid a line.
func readPids(name string) ([]int, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// readKey returns the value of key in a flat-keyed file ("key value" a
// line: cgroup.events, cpu.stat).
func readKey(name, key string) (string, bool, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", false, err
	}
	for line := range bytes.Lines(data) {
		k, v, ok := strings.Cut(strings.TrimSpace(string(line)), " ")
		if ok && k == key {
			return v, true, nil
		}
	}
	return "", false, nil
}

// populated reads the "populated" key of dir's cgroup.events: 1 while the
// cgroup or a descendant holds a live process.
func populated(dir string) (bool, error) {
	name := dir + "/cgroup.events"
	v, ok, err := readKey(name, "populated")
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("read %s: no populated key", name)
	}
	return v != "0", nil
}

// removeDir removes a cgroup and the sub-cgroups below it, deepest first.
// rmdir of a cgroup fails with EBUSY while it still has processes, and
// briefly after the last one died while the kernel finishes with it, so
// EBUSY is retried until timeout. A directory already gone is no error.
func removeDir(dir string, timeout time.Duration) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeDir(dir+"/"+e.Name(), timeout); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
