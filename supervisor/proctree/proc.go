package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Stat is what the package reads from /proc/PID/stat.
type Stat struct {
	Pid, PPid, Pgid, Sid int
	// State is the kernel's one-letter state: R, S, D, T, t, Z (zombie),
	// X (dead), I, ...
	State byte
}

// Dead is true for a zombie or a task being torn down: it cannot run, fork
// or be killed any more, only reaped.
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) { return sysProc.stat(pid) }

// procfs reads a /proc tree; tests point it at a fake one.
type procfs struct {
	root string

	once     sync.Once
	children bool // CONFIG_PROC_CHILDREN: task/TID/children files exist
}

var sysProc = &procfs{root: "/proc"}

func (p *procfs) path(pid int, elem ...string) string {
	return filepath.Join(append([]string{p.root, strconv.Itoa(pid)}, elem...)...)
}

func (p *procfs) stat(pid int) (Stat, error) {
	data, err := os.ReadFile(p.path(pid, "stat"))
	if err != nil {
		return Stat{}, err
	}
	st, err := parseStat(data)
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat reads "pid (comm) state ppid pgrp session ...". comm may hold
// spaces and parentheses, so the fields are counted from the last ')'.
func parseStat(data []byte) (Stat, error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 1 || end < open {
		return Stat{}, errors.New("no (comm)")
	}
	f := strings.Fields(string(data[end+1:]))
	if len(f) < 4 || len(f[0]) != 1 {
		return Stat{}, errors.New("too few fields")
	}
	var st Stat
	var err error
	ints := []*int{&st.Pid, &st.PPid, &st.Pgid, &st.Sid}
	texts := []string{strings.TrimSpace(string(data[:open])), f[1], f[2], f[3]}
	for i, dst := range ints {
		if *dst, err = strconv.Atoi(texts[i]); err != nil {
			return Stat{}, err
		}
	}
	st.State = f[0][0]
	return st, nil
}

// scan reads the stat of every process. Processes that exit meanwhile are
// left out.
func (p *procfs) scan() (map[int]Stat, error) {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	all := make(map[int]Stat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := p.stat(pid)
		if vanished(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		all[pid] = st
	}
	return all, nil
}

// vanished tells the errors of reading /proc for a process that exited:
// ENOENT, or ESRCH when it died between open and read.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// hasChildrenFiles tells whether the kernel lists children per task
// (CONFIG_PROC_CHILDREN). Our own tasks are the test: we always exist.
func (p *procfs) hasChildrenFiles() bool {
	p.once.Do(func() {
		m, _ := filepath.Glob(filepath.Join(p.root, "self", "task", "*", "children"))
		p.children = len(m) > 0
	})
	return p.children
}

// childrenOf lists pid's children from the children file of each of its
// threads: a child belongs to the thread that forked it, and an adopted
// orphan to whichever thread the kernel picked.
func (p *procfs) childrenOf(pid int) ([]int, error) {
	tasks, err := os.ReadDir(p.path(pid, "task"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // exited
	}
	if err != nil {
		return nil, fmt.Errorf("list threads of %d: %w", pid, err)
	}
	var kids []int
	for _, task := range tasks {
		data, err := os.ReadFile(p.path(pid, "task", task.Name(), "children"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return nil, fmt.Errorf("read children of %d: %w", pid, err)
		}
		for _, f := range strings.Fields(string(data)) {
			if kid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids, nil
}
