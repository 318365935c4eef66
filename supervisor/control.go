package supervisor

import (
	"time"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/procfs"
)

// handleRequest answers a control request. It runs in the connection's
// goroutine: the loop answers through evControl, and what takes time
// (waiting for a reload, sampling CPU) happens here, off the loop.
func (s *Supervisor) handleRequest(req control.Request) control.Response {
	if req.Command == "upgrade" {
		if err := s.upgrade(); err != nil {
			return control.Response{Error: err.Error()}
		}
		return control.Response{OK: true}
	}
	if req.Command == "logs" {
		return s.recentLines(req.Lines)
	}
	if req.Command == "reload" {
		if err := s.reload("reload requested on the control socket", false); err != nil {
			return control.Response{Error: err.Error()}
		}
		return control.Response{OK: true}
	}
	reply := make(chan control.Response, 1)
	s.post(evControl{req: req, reply: reply})
	select {
	case r := <-reply:
		if r.Status != nil {
			s.sampleUsage(r.Status, 200*time.Millisecond)
		}
		return r
	case <-s.done:
		return control.Response{Error: "drover stopped"}
	}
}

// recentLines answers "logs": the workers' last n lines where drover
// prints them (dev mode). The sink is set at start and never changes, and
// keeps its lines under its own lock: no need for the loop.
func (s *Supervisor) recentLines(n int) control.Response {
	text, ok := s.output.(*output.TextSink)
	if !ok {
		return control.Response{Error: "the workers log to the journal: drover logs UNIT, or journalctl -u UNIT"}
	}
	return control.Response{OK: true, Lines: text.Recent(n)}
}

// handleControl answers status and scale in the loop.
func (s *Supervisor) handleControl(ev evControl) {
	switch ev.req.Command {
	case "status":
		ev.reply <- control.Response{OK: true, Status: s.status()}
	case "scale":
		n, err := s.scale(ev.req.Count)
		if err != nil {
			ev.reply <- control.Response{Error: err.Error()}
			return
		}
		ev.reply <- control.Response{OK: true, Workers: n}
	}
}

// sampleUsage fills CPUPercent and RSSBytes, measuring CPU over the
// interval: of the worker's whole cgroup where it has one (its
// descendants count), else of its process from /proc.
func (s *Supervisor) sampleUsage(st *control.Status, interval time.Duration) {
	before := make([]time.Duration, len(st.Processes))
	for i, p := range st.Processes {
		before[i], _ = s.cpuTime(p.Pid)
	}
	time.Sleep(interval)
	for i := range st.Processes {
		p := &st.Processes[i]
		if p.Pid == 0 {
			continue
		}
		if after, ok := s.cpuTime(p.Pid); ok && before[i] > 0 {
			p.CPUPercent = float64(after-before[i]) / float64(interval) * 100
		}
		p.RSSBytes = s.treeMemory(p.Pid, nil)
	}
}

// cpuTime is the CPU time a worker used so far.
func (s *Supervisor) cpuTime(pid int) (time.Duration, bool) {
	if cg := s.cgroupOfPid(pid); cg != nil {
		if d, ok := cg.CPUUsage(); ok {
			return d, true
		}
	}
	ticks, ok := procfs.CPUTicks(pid)
	return time.Duration(ticks) * time.Second / procfs.ClockTicks, ok
}
