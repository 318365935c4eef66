package proctree

import (
	"bytes"
	"os"
	"strconv"
)

// The variables drover sets in every worker's environment; children inherit
// them.
const (
	EnvWorkerID   = "DROVER_WORKER_ID"
	EnvGeneration = "DROVER_GENERATION"
)

// Tag names a worker incarnation: its slot and its generation.
type Tag struct{ Slot, Generation int }

// Evidence says how Attribute tied a process to a worker.
type Evidence int

const (
	// Unattributed: neither environment nor process group tells. The
	// process is some worker's; which one, the caller must judge.
	Unattributed Evidence = iota
	// ByEnvironment: DROVER_WORKER_ID and DROVER_GENERATION in
	// /proc/PID/environ. Exact unless the process forged them.
	ByEnvironment
	// ByProcessGroup: the process is in the group a worker leads.
	ByProcessGroup
)

func (e Evidence) String() string {
	switch e {
	case Unattributed:
		return "unattributed"
	case ByEnvironment:
		return "environment"
	case ByProcessGroup:
		return "process group"
	}
	return "evidence(" + strconv.Itoa(int(e)) + ")"
}

// WorkerOf reads the worker tags from /proc/PID/environ: the environment
// the process was started with, as its own memory holds it. ok is false
// when the file cannot be read (another uid, not dumpable, a zombie, gone)
// or either variable is missing or not a number.
func WorkerOf(pid int) (slot, generation int, ok bool) { return sysProc.workerOf(pid) }

func (p *procfs) workerOf(pid int) (slot, generation int, ok bool) {
	data, err := os.ReadFile(p.path(pid, "environ"))
	if err != nil {
		return 0, 0, false
	}
	slot, generation = -1, -1
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, found := bytes.Cut(kv, []byte{'='})
		if !found {
			continue
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			continue
		}
		switch string(k) {
		case EnvWorkerID:
			slot = n
		case EnvGeneration:
			generation = n
		}
	}
	if slot < 0 || generation < 0 {
		return 0, 0, false
	}
	return slot, generation, true
}

// Attribute ties a process (typically one of Orphans) to a worker: by its
// environment first, then by groups, which maps the process group id of
// each worker of interest (each leads its own group: pgid = worker pid) to
// its tag. See the package doc for what Unattributed should mean to the
// caller.
func Attribute(pid int, groups map[int]Tag) (Tag, Evidence) {
	return sysProc.attribute(pid, groups)
}

func (p *procfs) attribute(pid int, groups map[int]Tag) (Tag, Evidence) {
	if slot, gen, ok := p.workerOf(pid); ok {
		return Tag{Slot: slot, Generation: gen}, ByEnvironment
	}
	if st, err := p.stat(pid); err == nil {
		if tag, ok := groups[st.Pgid]; ok {
			return tag, ByProcessGroup
		}
	}
	return Tag{}, Unattributed
}
