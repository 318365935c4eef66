package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Status is what `drover status` shows of a running drover: the JSON form
// is part of drover's interface (drover status --json), so fields are only
// ever added.
type Status struct {
	Pid int `json:"pid"`
	// State: starting, serving, reloading, rolling-back or stopping.
	State      string `json:"state"`
	StatusText string `json:"status_text"`
	// Generation is the one serving; during a reload, the new one shows in
	// status_text and in processes.
	Generation int `json:"generation"`
	// Workers is the number of slots; Ready how many have a ready worker.
	Workers         int            `json:"workers"`
	Ready           int            `json:"ready"`
	Restarts        int            `json:"restarts"`
	Reloads         int            `json:"reloads"`
	LastReloadError string         `json:"last_reload_error,omitempty"`
	Sockets         []string       `json:"sockets"`
	Command         []string       `json:"command"`
	Processes       []WorkerStatus `json:"processes"`
}

// WorkerStatus is one worker process, or a slot waiting to restart one.
type WorkerStatus struct {
	Slot int `json:"slot"`
	// Pid is 0 for a slot backing off before a restart.
	Pid        int `json:"pid,omitempty"`
	Generation int `json:"generation,omitempty"`
	// State: starting, ready, draining or backing-off.
	State   string    `json:"state"`
	Started time.Time `json:"started,omitzero"`
	// Restarts counts the slot's restarts since drover started.
	Restarts int `json:"restarts"`
	// CPUPercent is the share of one CPU used over a short sample; RSSBytes
	// the resident memory. Both 0 when /proc could not be read.
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
	// Status is the worker's own STATUS= line, if it sent one.
	Status string `json:"status,omitempty"`
}

// status takes a snapshot; called by the event loop.
func (s *Supervisor) status() *Status {
	st := &Status{
		Pid:             os.Getpid(),
		StatusText:      s.statusLine(),
		Generation:      s.current.number,
		Workers:         len(s.slots),
		Ready:           s.readyCount(s.current),
		Restarts:        s.restarts,
		Reloads:         s.reloads,
		LastReloadError: s.reloadFailure,
		Sockets:         s.Addrs(),
		Command:         s.cfg.Command,
	}
	switch {
	case s.stopping:
		st.State = "stopping"
	case s.current.state == generationStarting:
		st.State = "starting"
	case s.rollout != nil && s.rollout.failure != nil:
		st.State = "rolling-back"
	case s.rollout != nil:
		st.State = "reloading"
	default:
		st.State = "serving"
	}
	inSlot := map[*worker]bool{}
	for _, sl := range s.slots {
		for _, w := range []*worker{sl.worker, sl.next} {
			if w != nil {
				inSlot[w] = true
				st.Processes = append(st.Processes, workerStatus(w))
			}
		}
		if sl.worker == nil && sl.next == nil {
			st.Processes = append(st.Processes, WorkerStatus{Slot: sl.id, State: "backing-off", Restarts: sl.restarts})
		}
	}
	for _, w := range s.byPid {
		if !inSlot[w] {
			st.Processes = append(st.Processes, workerStatus(w))
		}
	}
	return st
}

func workerStatus(w *worker) WorkerStatus {
	return WorkerStatus{
		Slot: w.slot.id, Pid: w.pid, Generation: w.gen.number, State: w.state.String(),
		Started: w.started, Restarts: w.slot.restarts, Status: w.status,
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// sampleUsage fills CPUPercent and RSSBytes from /proc, measuring CPU over
// the interval. It runs outside the event loop.
func sampleUsage(st *Status, interval time.Duration) {
	before := make([]int64, len(st.Processes))
	for i, p := range st.Processes {
		before[i], _ = procCPUTicks(p.Pid)
	}
	time.Sleep(interval)
	for i := range st.Processes {
		p := &st.Processes[i]
		if p.Pid == 0 {
			continue
		}
		if after, ok := procCPUTicks(p.Pid); ok && before[i] > 0 {
			p.CPUPercent = float64(after-before[i]) / clockTicks / interval.Seconds() * 100
		}
		p.RSSBytes = procRSS(p.Pid)
	}
}

func procCPUTicks(pid int) (int64, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields that follow start after its last ')'.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return utime + stime, true
}

func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// ParseScale parses drover scale's count: N, +N or -N.
func ParseScale(s string) (relative bool, n int, err error) {
	relative = strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")
	n, err = strconv.Atoi(s)
	if err != nil || (!relative && n < 1) || (relative && n == 0) {
		return false, 0, usage(fmt.Errorf("scale %q: want a count from 1 to %d, +N or -N", s, MaxWorkers))
	}
	return relative, n, nil
}

// scale changes the number of slots: new ones start workers of the serving
// generation (gated on readiness like any other), removed ones drain. It is
// refused while a start or reload is under way, so the two never race.
func (s *Supervisor) scale(spec string) (int, error) {
	relative, n, err := ParseScale(spec)
	if err != nil {
		return 0, err
	}
	target := n
	if relative {
		target = len(s.slots) + n
	}
	switch {
	case target < 1 || target > MaxWorkers:
		return 0, fmt.Errorf("scale %s: %d workers is outside 1..%d", spec, target, MaxWorkers)
	case s.stopping:
		return 0, fmt.Errorf("scale %s: drover is stopping", spec)
	case s.current.state == generationStarting || s.rollout != nil:
		return 0, fmt.Errorf("scale %s: a start or reload is under way; try again once it is done", spec)
	}
	from := len(s.slots)
	for len(s.slots) < target {
		sl := &slot{id: len(s.slots)}
		s.slots = append(s.slots, sl)
		sl.worker = s.startWorker(sl, s.current, nil)
	}
	for len(s.slots) > target {
		sl := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if sl.restartTimer != nil {
			sl.restartTimer.Stop()
			sl.restartTimer = nil
		}
		if sl.worker != nil {
			s.stopWorker(sl.worker)
		}
	}
	s.cfg.Workers = target
	s.log.WithField("from", from).Infof("scaled to %d workers", target)
	return target, nil
}
