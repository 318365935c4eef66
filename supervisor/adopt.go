package supervisor

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/notify"
	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/proctree"
	"github.com/droverd/drover/supervisor/sockets"
)

// HandoverFromEnv returns the state an upgrading drover handed to this
// image (upgrade.go), nil when this image was not started by an upgrade,
// and removes the variable so no worker sees it.
func HandoverFromEnv() *os.File {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(handoverEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil
	}
	return adoptFile(fd, "drover-handover")
}

// adopt takes over from the image before (drover upgrade) instead of
// opening anything: Run then adopts its workers.
func (s *Supervisor) adopt(state *os.File) error {
	h, err := readHandover(state)
	if err != nil {
		return err
	}
	if err := s.adoptResources(h); err != nil {
		return err
	}
	if err := s.openMetrics(); err != nil {
		return err
	}
	s.metrics.Carry(h.Counters)
	s.handover = h
	return nil
}

// adoptResources takes the sockets, pins and counters of the image before.
func (s *Supervisor) adoptResources(h *handover) error {
	for _, hs := range h.Sockets {
		sock, err := sockets.Adopt(adoptFile(hs.FD, hs.Name), hs.Name, hs.Unlink)
		if err != nil {
			return fmt.Errorf("adopt socket %s: %w", hs.Addr, err)
		}
		s.sockets = append(s.sockets, sock)
	}
	if hs := h.Metrics; hs != nil {
		sock, err := sockets.Adopt(adoptFile(hs.FD, hs.Name), hs.Name, hs.Unlink)
		if err != nil {
			return fmt.Errorf("adopt the metrics socket %s: %w", hs.Addr, err)
		}
		s.metricsSocket = &sock
	}
	var err error
	if s.workerNotify, err = notify.Adopt(adoptFile(h.WorkerNotify.FD, "notify"), h.WorkerNotify.Addr); err != nil {
		return err
	}
	if hs := h.Control; hs != nil {
		if s.control, err = control.Adopt(adoptFile(hs.FD, "control"), hs.Addr, s.log); err != nil {
			return err
		}
	}
	s.pinDir, s.removePins = h.PinDir, h.RemovePins
	s.pinLock = adoptFile(h.PinLockFD, "pin-lock")
	g := h.Generation
	s.current = &generation{number: g.Number, state: generationServing,
		exe: &pinnedExe{path: g.Path, file: adoptFile(g.FD, g.Path), link: g.Link}}
	s.started, s.upgraded, s.upgradedFrom = h.Started, h.Upgraded, h.Version
	s.restarts, s.reloads, s.recycles, s.hung = h.Restarts, h.Reloads, h.Recycles, h.Hung
	s.reloadFailure, s.launches = h.ReloadFailure, h.Launches
	return nil
}

// adoptWorkers takes over the workers of the image before, as they are:
// ready, serving, their health timers armed again.
func (s *Supervisor) adoptWorkers(h *handover) {
	for _, hs := range h.Slots {
		sl := &slot{id: hs.ID, failures: hs.Failures, consecutive: hs.Consecutive, restarts: hs.Restarts,
			recycles: hs.Recycles, recycleReason: hs.RecycleReason, recycleKind: recycleKind(hs.RecycleKind),
			recycleBackoff: hs.RecycleBackoff, lastFailure: failureKind(hs.LastFailure)}
		hw := hs.Worker
		w := &worker{slot: sl, gen: s.current, pid: hw.Pid, state: workerReady, started: hw.Started, readyAt: hw.ReadyAt,
			status: hw.Status, lastPing: hw.LastPing, watchdogInterval: hw.WatchdogInterval, memory: hw.Memory}
		sl.worker = w
		s.slots = append(s.slots, sl)
		s.byPid[w.pid] = w
		if hw.Cgroup != "" && s.cgroups != nil {
			if cg, err := s.cgroups.AdoptWorker(hw.Cgroup); err != nil {
				s.workerLog(w).WithError(err).Warn("cannot adopt the worker's cgroup: it is contained as a descendant only")
			} else {
				s.cgroupOf.Store(w.pid, cg)
			}
		}
		files := adoptedFiles{
			out:     [2]*os.File{adoptFile(hw.Stdout, "stdout"), adoptFile(hw.Stderr, "stderr")},
			channel: adoptFile(hw.Channel, "node-channel"),
			streams: adoptStreams(hw.Streams),
		}
		s.env.adopt(w.pid, s.outputMeta(sl.id, w.pid, s.current.number), files, func(e exit) { s.post(evExited{w: w, exit: e}) })
		s.armLifetimeLeft(w)
		s.armWatchdog(w)
	}
	s.setPhase(phaseServing)
	s.log.WithFields(logrus.Fields{"from": h.Version, "workers": len(s.slots), "generation": s.current.number}).
		Info("upgraded in place: adopted every worker")
	s.logNotify(s.systemd.Watchdog())
	s.updateStatus()
}

// armLifetimeLeft arms --max-lifetime for what is left of an adopted
// worker's life.
func (s *Supervisor) armLifetimeLeft(w *worker) {
	if s.cfg.MaxLifetime <= 0 {
		return
	}
	left := max(s.cfg.MaxLifetime-time.Since(w.readyAt), time.Millisecond)
	w.lifeTimer = time.AfterFunc(left, func() {
		s.post(evRecycleDue{w, recycleLifetime, "lifetime " + s.cfg.MaxLifetime.String()})
	})
}

// adoptedFiles are the descriptors of a worker an earlier image started:
// its output pipes (nil where the stream ended), its Node channel and its
// journal streams.
type adoptedFiles struct {
	out     [2]*os.File
	channel *os.File
	streams streams
}

// adoptStreams marks the handed-over journal streams close-on-exec again,
// as every descriptor of drover's own is.
func adoptStreams(fds []int) streams {
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	return fds
}

// adopt watches a worker an earlier image started: its exit (it is our
// child still, so wait4 reaps it), its output and its Node channel.
func (r realEnv) adopt(pid int, meta output.Meta, files adoptedFiles, exited func(exit)) {
	s := r.s
	p := &process{pid: pid, cg: s.cgroupOfPid(pid), channel: files.channel, streams: files.streams,
		log: s.log.WithFields(logrus.Fields{"worker": meta.ID, "pid": pid})}
	if files.out[0] != nil || files.out[1] != nil {
		p.setCapture(output.Resume(files.out, meta, s.output, output.Limits{}))
	}
	s.procs.Store(pid, p)
	var channelDone chan struct{}
	if p.channel != nil {
		channelDone = make(chan struct{})
		s.wg.Add(1)
		go s.readChannel(p, channelDone)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		e := p.waitAdopted()
		s.cgroupOf.Delete(pid)
		s.procs.Delete(pid)
		if p.channel != nil {
			// As for a launched worker: its last messages before its exit.
			p.channel.Close()
			<-channelDone
		}
		exited(e)
	}()
}

// waitAdopted is wait for a process this image did not start.
func (p *process) waitAdopted() exit {
	proctree.WaitExit(context.Background(), p.pid)
	p.journalStreams().awaitRead()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.removeCgroup()
	if c := p.capture(); c != nil {
		c.Wait(200*time.Millisecond, 5*time.Second)
	}
	e := exit{status: waitFailure(syscall.WaitStatus(ws))}
	if ws.Signaled() {
		e.signal = ws.Signal()
	}
	return e
}

// processOf is the live worker process pid, nil if none.
func (s *Supervisor) processOf(pid int) *process {
	if p, ok := s.procs.Load(pid); ok {
		return p.(*process)
	}
	return nil
}
