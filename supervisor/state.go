package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// workerState is where one worker process is in its life. A slot outlives
// its workers: when a worker fails, the slot backs off and starts a new
// worker with the same DROVER_WORKER_ID.
type workerState int

const (
	// workerStarting: spawned, not yet ready; readiness is being watched
	// and the ready timeout runs.
	workerStarting workerState = iota
	// workerReady: serving.
	workerReady
	// workerDraining: sent the stop signal, waiting for it to exit; SIGKILL
	// follows at the stop timeout.
	workerDraining
	// workerExited: the process is gone and reaped.
	workerExited
)

func (s workerState) String() string {
	switch s {
	case workerStarting:
		return "starting"
	case workerReady:
		return "ready"
	case workerDraining:
		return "draining"
	case workerExited:
		return "exited"
	}
	return fmt.Sprintf("workerState(%d)", int(s))
}

// legalWorkerMoves is every transition a worker may make; anything else is a
// bug in the event loop, reported instead of silently corrupting state.
var legalWorkerMoves = map[workerState][]workerState{
	workerStarting: {workerReady, workerDraining, workerExited},
	workerReady:    {workerDraining, workerExited},
	workerDraining: {workerExited},
	workerExited:   nil,
}

func (w *worker) moveTo(to workerState) error {
	for _, ok := range legalWorkerMoves[w.state] {
		if ok == to {
			w.state = to
			return nil
		}
	}
	return fmt.Errorf("worker %d (pid %d): illegal move %s -> %s", w.slot.id, w.pid, w.state, to)
}

// generationState is where a generation (all workers started from one
// version of the command) is in its life.
type generationState int

const (
	// generationStarting: its workers are starting; it has never been fully
	// ready.
	generationStarting generationState = iota
	// generationServing: every slot has been ready at least once; failures
	// from now on are restarts, not a failed start.
	generationServing
	// generationRetiring: being drained (drover is stopping).
	generationRetiring
)

func (s generationState) String() string {
	switch s {
	case generationStarting:
		return "starting"
	case generationServing:
		return "serving"
	case generationRetiring:
		return "retiring"
	}
	return fmt.Sprintf("generationState(%d)", int(s))
}

var legalGenerationMoves = map[generationState][]generationState{
	generationStarting: {generationServing, generationRetiring},
	generationServing:  {generationRetiring},
	generationRetiring: nil,
}

func (g *generation) moveTo(to generationState) error {
	for _, ok := range legalGenerationMoves[g.state] {
		if ok == to {
			g.state = to
			return nil
		}
	}
	return fmt.Errorf("generation %d: illegal move %s -> %s", g.number, g.state, to)
}

// phase is where the supervisor as a whole is: what the STATUS= line, the
// snapshot, reload requests and scale read, instead of each working it out
// from the generations and the rollout.
type phase int

const (
	// phaseStarting: the first generation is starting; READY=1 not sent.
	phaseStarting phase = iota
	// phaseServing: every slot has been ready; nothing under way.
	phaseServing
	// phaseReloading: a rollout to a new generation is under way.
	phaseReloading
	// phaseRollingBack: a reload failed; slots that had moved go back.
	phaseRollingBack
	// phaseStopping: draining every worker before Run returns.
	phaseStopping
)

func (p phase) String() string {
	switch p {
	case phaseStarting:
		return "starting"
	case phaseServing:
		return "serving"
	case phaseReloading:
		return "reloading"
	case phaseRollingBack:
		return "rolling-back"
	case phaseStopping:
		return "stopping"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

var legalPhaseMoves = map[phase][]phase{
	phaseStarting: {phaseServing, phaseStopping},
	// A reload whose new generation cannot even be made ends at once.
	phaseServing:     {phaseReloading, phaseStopping},
	phaseReloading:   {phaseServing, phaseRollingBack, phaseStopping},
	phaseRollingBack: {phaseServing, phaseStopping},
	phaseStopping:    nil,
}

// setPhase moves the supervisor to phase to; an illegal move is a bug,
// logged loudly and otherwise ignored.
func (s *Supervisor) setPhase(to phase) {
	for _, ok := range legalPhaseMoves[s.phase] {
		if ok == to {
			s.log.WithFields(logrus.Fields{"from": s.phase.String(), "to": to.String()}).Debug("phase")
			s.phase = to
			return
		}
	}
	s.log.WithError(fmt.Errorf("illegal move %s -> %s", s.phase, to)).Error("bug: illegal supervisor phase transition")
}

// moveGeneration applies a generation's transition; an illegal one is
// reported like an illegal worker move.
func (s *Supervisor) moveGeneration(g *generation, to generationState) {
	if err := g.moveTo(to); err != nil {
		s.log.WithError(err).Error("bug: illegal generation state transition")
	}
}

// slot is one of the N worker positions. It keeps its id (DROVER_WORKER_ID)
// and its failure history across the workers that fill it.
type slot struct {
	id     int
	worker *worker // serving or starting; nil while backing off
	// next is a worker of a rollout's generation starting to replace
	// worker; it takes the slot once ready.
	next         *worker
	failures     []time.Time
	consecutive  int // failures since a worker last stayed up MinUptime
	restartTimer *time.Timer
	restarts     int
	// lastFailure is the kind of the failure the next restart follows.
	lastFailure failureKind
	// recycles counts the slot's recycles; recycleReason is the last
	// one's; recycleTimer retries a failed one after recycleBackoff.
	recycles       int
	recycleReason  string
	recycleKind    recycleKind
	recycleTimer   *time.Timer
	recycleBackoff time.Duration
}

// pruneFailures forgets the slot's failures older than window: what is
// left is what counts toward a crash loop.
func (sl *slot) pruneFailures(now time.Time, window time.Duration) {
	kept := sl.failures[:0]
	for _, t := range sl.failures {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	sl.failures = kept
}

// worker is one process in a slot.
type worker struct {
	slot    *slot
	gen     *generation
	rollout *rollout // the rollout that started it, if any
	pid     int
	state   workerState
	started time.Time
	readyAt time.Time
	// stopRequested: drover asked it to exit, so its exit is no failure
	// unless killedFor says otherwise.
	stopRequested bool
	// killedFor is why drover killed it (not ready in time), if it did.
	killedFor *failure
	// status is the worker's own STATUS= line.
	status string
	// replaces is the worker a recycle started this one to replace.
	replaces *worker
	// Health: memory at the last sample, liveness samples missed in a
	// row, whether a recycle is asked for, the age recycle, the watchdog.
	memory           int64
	livenessMisses   int
	recycleWanted    bool
	lifeTimer        *time.Timer
	watchdogInterval time.Duration
	watchdogTimer    *time.Timer
	watchdogArmed    time.Time
	lastPing         time.Time
	timer            *time.Timer // the ready timeout, then the stop timeout
	cancelProbe      context.CancelFunc
}

// generation is all the workers started from one version of the command.
type generation struct {
	number int
	state  generationState
	exe    *pinnedExe
}
