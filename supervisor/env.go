package supervisor

import (
	"context"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/output"
)

// env is everything the event loop does to the world outside it: start a
// worker process, watch it become ready, signal it. Run uses realEnv; the
// lifecycle tests drive the loop with fake processes whose ready and exit
// events the test fires (env_test.go), so they are ordered by the test,
// not by timers and the machine's speed.
type env interface {
	// launch starts a worker process of gen for slot; exited is called
	// once, from another goroutine, when the process is gone and its last
	// output forwarded.
	launch(slot int, gen *generation, exited func(exit)) (pid int, err error)
	// watchReady calls ready once, from another goroutine, when the
	// starting worker pid waits for connections on every socket (--ready
	// listen); it gives up when ctx ends.
	watchReady(ctx context.Context, pid int, log logrus.FieldLogger, ready func())
	// signal sends sig to the worker process alone.
	signal(pid int, sig syscall.Signal) error
	// killTree sends SIGKILL to the worker and everything it started.
	killTree(pid int)
	// adopt watches a worker an earlier drover image started (adopt.go):
	// exited is called as for launch.
	adopt(pid int, meta output.Meta, files adoptedFiles, exited func(exit))
}

// exit is how a worker process ended: status (failExit or failSignal),
// and execErr when the trampoline could not exec the command.
type exit struct {
	status  failure
	execErr string
	// signal killed the process (0: it exited).
	signal syscall.Signal
}

// realEnv runs real processes: through the trampoline, readiness read from
// /proc.
type realEnv struct{ s *Supervisor }

func (r realEnv) launch(slot int, gen *generation, exited func(exit)) (int, error) {
	proc, err := r.s.launch(slot, gen)
	if err != nil {
		return 0, err
	}
	s := r.s
	s.procs.Store(proc.pid, proc)
	s.wg.Add(1)
	var channelDone chan struct{}
	if proc.channel != nil {
		channelDone = make(chan struct{})
		s.wg.Add(1)
		go s.readChannel(proc, channelDone)
	}
	go func() {
		defer s.wg.Done()
		e := proc.wait()
		s.cgroupOf.Delete(proc.pid)
		s.procs.Delete(proc.pid)
		if proc.channel != nil {
			// The worker is gone, but a process it started may still
			// hold the channel: closing drover's end ends the reader,
			// and its last message reaches the loop before the exit
			// does, so none can be taken for a later process's.
			proc.channel.Close()
			<-channelDone
		}
		exited(e)
		// Output a worker's child still writes is forwarded until drover
		// ends.
		select {
		case <-proc.capture().Done():
		case <-s.done:
			proc.capture().Close()
		}
	}()
	return proc.pid, nil
}

func (e realEnv) watchReady(ctx context.Context, pid int, log logrus.FieldLogger, ready func()) {
	e.s.wg.Add(1)
	go func() {
		defer e.s.wg.Done()
		probeListening(ctx, pid, e.s.inodes(), log, ready)
	}()
}

func (realEnv) signal(pid int, sig syscall.Signal) error { return unix.Kill(pid, sig) }

// killTree kills the worker's cgroup, or its process group, so that
// whatever the worker forked goes too; descendants outside its group are
// caught when it has exited (contain.go).
func (e realEnv) killTree(pid int) {
	if cg := e.s.cgroupOfPid(pid); cg != nil {
		cg.Kill()
	}
	unix.Kill(-pid, unix.SIGKILL)
	unix.Kill(pid, unix.SIGKILL)
}
