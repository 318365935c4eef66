package supervisor

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/procfs"
	"github.com/droverd/drover/supervisor/proctree"
)

// Health: drover watches every ready worker for three kinds of trouble and
// heals each the zero-downtime way (recycle.go), or, for a hung worker, by
// killing it (watchdog.go).
//
//   - memory: a worker (with its descendants) over --max-memory;
//   - age: a worker ready for --max-lifetime ±10%;
//   - liveness, always on: a ready worker that no longer waits on every
//     socket it was given (it closed its listener, its accept loop died)
//     serves nobody. Three misses in a row count, so a single-threaded
//     blocking server caught mid-request is not taken for dead.
//
// Sampling reads /proc and cgroup files off the loop, at one tick: the
// shorter of --memory-interval (when --max-memory is set) and
// LivenessInterval. An idle drover wakes only then.

// livenessMisses is how many liveness samples in a row a worker must fail.
const livenessMisses = 3

// workerSample is what one health tick saw of one ready worker.
type workerSample struct {
	w         *worker
	memory    int64 // bytes; -1 when not sampled
	checked   bool  // liveness was sampled; listening is its result
	listening bool
	gone      bool // exited while sampled: its exit event follows
}

// evHealthSample carries a tick's samples back to the loop.
type evHealthSample struct{ samples []workerSample }

// healthInterval is the tick, or 0 when nothing is to be sampled.
func (s *Supervisor) healthInterval() time.Duration {
	d := s.cfg.LivenessInterval
	if s.cfg.MaxMemory > 0 && s.cfg.MemoryInterval < d {
		d = s.cfg.MemoryInterval
	}
	return d
}

// healthTick starts sampling the ready workers, off the loop.
func (s *Supervisor) healthTick(now time.Time) {
	if s.phase == phaseStopping || s.sampling {
		return
	}
	checkLiveness := now.Sub(s.lastLiveness) >= s.cfg.LivenessInterval
	if checkLiveness {
		s.lastLiveness = now
	}
	var ws []*worker
	for _, w := range s.byPid {
		if w.state == workerReady {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 || (!checkLiveness && s.cfg.MaxMemory == 0) {
		return
	}
	s.sampling = true
	inodes, memory := s.inodes(), s.cfg.MaxMemory > 0
	pids := make([]int, len(ws))
	for i, w := range ws {
		pids[i] = w.pid
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.post(evHealthSample{s.sample(ws, pids, inodes, memory, checkLiveness)})
	}()
}

// sample runs off the loop: it reads only pids and files, never worker
// fields the loop owns.
func (s *Supervisor) sample(ws []*worker, pids []int, inodes []uint64, memory, liveness bool) []workerSample {
	// One look at /proc for every worker's tree: where workers have
	// cgroups without the memory controller (hybrid hosts), the trees are
	// what memory is measured on too.
	var trees map[int][]int
	if memory {
		trees, _ = proctree.Trees(pids)
	}
	out := make([]workerSample, len(ws))
	for i, w := range ws {
		out[i] = workerSample{w: w, memory: -1, listening: true}
		if memory {
			out[i].memory = s.treeMemory(pids[i], trees[pids[i]])
		}
		if liveness {
			missing, err := procfs.ListeningOn(pids[i], inodes)
			// Only a vanished process is gone (its exit event follows); a
			// /proc drover cannot read says nothing, so it counts as
			// listening, and its memory sample still counts.
			out[i].checked = true
			out[i].gone = errors.Is(err, procfs.ErrProcessGone)
			out[i].listening = err != nil || len(missing) == 0
		}
	}
	return out
}

// treeMemory is a worker's memory with its descendants: its cgroup's
// memory.current where the memory controller is on, else the RSS of its
// process tree (shared pages count once per process, so this errs high).
// With no descendants given, the RSS part is the worker's own (status
// and metrics).
func (s *Supervisor) treeMemory(pid int, descendants []int) int64 {
	if cg := s.cgroupOfPid(pid); cg != nil {
		if mem, ok := cg.MemoryCurrent(); ok {
			return mem
		}
	}
	total := procfs.RSS(pid)
	for _, d := range descendants {
		total += procfs.RSS(d)
	}
	return total
}

// handleHealthSample acts on a tick's samples.
func (s *Supervisor) handleHealthSample(ev evHealthSample) {
	s.sampling = false
	for _, smp := range ev.samples {
		w := smp.w
		if smp.gone || w.state != workerReady {
			continue
		}
		if smp.memory >= 0 {
			w.memory = smp.memory
		}
		if limit := s.cfg.MaxMemory; limit > 0 && smp.memory > limit {
			s.requestRecycle(w, recycleMemory, "memory "+FormatSize(smp.memory)+" > "+FormatSize(limit))
		}
		if !smp.checked {
			continue
		}
		if smp.listening {
			w.livenessMisses = 0
			continue
		}
		if w.livenessMisses++; w.livenessMisses >= livenessMisses {
			s.requestRecycle(w, recycleNotListening, "not waiting on its sockets (it closed its listener, or its accept loop died)")
		}
	}
}

// armLifetime schedules a ready worker's age recycle, jittered ±10% so
// workers started together are not all recycled together.
func (s *Supervisor) armLifetime(w *worker) {
	if s.cfg.MaxLifetime <= 0 {
		return
	}
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(s.cfg.MaxLifetime))
	w.lifeTimer = time.AfterFunc(s.cfg.MaxLifetime+jitter, func() {
		s.post(evRecycleDue{w, recycleLifetime, "lifetime " + s.cfg.MaxLifetime.String()})
	})
}

// overMemoryAtReady is the memory check of a worker just ready: one over
// the limit already would be recycled forever, so it is a failed start.
func (s *Supervisor) overMemoryAtReady(w *worker) (failure, bool) {
	if s.cfg.MaxMemory <= 0 {
		return failure{}, false
	}
	descendants, _ := proctree.Descendants(w.pid)
	mem := s.treeMemory(w.pid, descendants)
	w.memory = mem
	if mem <= s.cfg.MaxMemory {
		return failure{}, false
	}
	s.workerLog(w).WithFields(logrus.Fields{"memory": mem, "limit": s.cfg.MaxMemory}).Warn("worker over --max-memory as soon as it is ready")
	return failure{failMemory, "over --max-memory " + FormatSize(s.cfg.MaxMemory) + " as soon as it was ready (" + FormatSize(mem) + ")"}, true
}
