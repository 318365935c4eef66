package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the bench reads of /proc/PID/stat.
type procStat struct {
	pid   int
	ppid  int
	state byte
	// start is the start time in clock ticks since boot: with the pid, it
	// names one process, so a recycled pid is never mistaken for it.
	start uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// comm may hold spaces and parentheses: the fields start after the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{pid: pid, ppid: ppid, state: f[0][0], start: start}, nil
}

// children lists the processes whose parent is ppid, zombies included.
func children(ppid int) ([]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if st.ppid == ppid {
			out = append(out, st)
		}
	}
	return out, nil
}

// alive reports whether the process st named still exists and is not a
// zombie.
func alive(st procStat) bool {
	now, err := readStat(st.pid)
	return err == nil && now.start == st.start && now.state != 'Z'
}

// footprint is one sample of a process's resources.
type footprint struct {
	rssKiB  int
	threads int
	fds     int
	zombies int // its children in state Z
	workers int // its children not in state Z
}

func readFootprint(pid int) (footprint, error) {
	var fp footprint
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return fp, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSuffix(strings.TrimSpace(v), " kB")
		switch k {
		case "VmRSS":
			fp.rssKiB, _ = strconv.Atoi(v)
		case "Threads":
			fp.threads, _ = strconv.Atoi(v)
		}
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return fp, err
	}
	fp.fds = len(fds)
	kids, err := children(pid)
	if err != nil {
		return fp, err
	}
	for _, k := range kids {
		if k.state == 'Z' {
			fp.zombies++
		} else {
			fp.workers++
		}
	}
	return fp, nil
}
