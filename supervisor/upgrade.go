package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/sockets"
)

// An upgrade re-executes the drover binary now on disk in this process:
// the pid systemd tracks stays, the workers stay its children and are
// neither restarted nor signalled. The running image checks the new binary
// first (drover upgrade-check), then hands its whole state over in a memfd
// with every descriptor kept under its number, and execs on the spawner's
// thread: the workers' Pdeathsig belongs to the thread that forked them,
// and exec ends every other thread. If the exec fails, the running image
// takes everything back and keeps going.

// UpgradeCheck is what `drover upgrade-check` prints: the running image
// reads it from the new binary before handing over.
type UpgradeCheck struct {
	Version         string `json:"version"`
	HandoverFormats []int  `json:"handover_formats"`
}

// checkTimeout bounds the new binary's answer to upgrade-check.
const checkTimeout = 10 * time.Second

// evUpgrade asks the loop to hand over to the checked binary.
type evUpgrade struct {
	path, version string
	reply         chan error
}

// upgrade handles a control request: it checks the new binary off the
// loop, then asks the loop to hand over. It returns only if the handover
// did not happen; otherwise this image is gone and the client sees its
// connection close.
func (s *Supervisor) upgrade() error {
	path := s.exePath
	if path == "" {
		return errors.New("upgrade: drover's own path is unknown")
	}
	s.checking.Add(1)
	check, err := checkBinary(path)
	s.checking.Add(-1)
	// An orphan that died during the check waits for the next SIGCHLD.
	syscall.Kill(os.Getpid(), syscall.SIGCHLD)
	if err != nil {
		return err
	}
	if !slices.Contains(check.HandoverFormats, HandoverFormat) {
		return fmt.Errorf("upgrade refused: %s (drover %s) reads handover formats %v, this drover writes %d; restart the service instead",
			path, check.Version, check.HandoverFormats, HandoverFormat)
	}
	reply := make(chan error, 1)
	s.post(evUpgrade{path: path, version: check.Version, reply: reply})
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return errors.New("drover stopped")
	}
}

// checkBinary runs the new binary's upgrade-check: one that is missing,
// not executable, not drover or too old to answer is refused before
// anything is handed over.
func checkBinary(path string) (UpgradeCheck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "upgrade-check").Output()
	var check UpgradeCheck
	if err == nil {
		err = json.Unmarshal(out, &check)
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
			line, _, _ := strings.Cut(string(exitErr.Stderr), "\n")
			err = fmt.Errorf("%w: %s", err, line)
		}
		return check, fmt.Errorf("upgrade refused: the new binary %s does not answer upgrade-check (%v); drover keeps running as it was", path, err)
	}
	return check, nil
}

// upgradeBlocker says why the loop cannot hand over now, "" if it can:
// only a steady state is handed over (every slot served by a ready
// worker, nothing starting, draining, backing off or recycling).
func (s *Supervisor) upgradeBlocker() string {
	switch {
	case s.phase != phaseServing:
		return "drover is " + s.phase.String()
	case s.rollout != nil || len(s.pending) > 0:
		return "a reload is under way"
	case s.recycling != nil || len(s.recycleQueue) > 0:
		return "a recycle is under way"
	case len(s.byPid) != len(s.slots):
		return "a worker is draining"
	}
	for _, sl := range s.slots {
		if sl.worker == nil || sl.worker.state != workerReady || sl.next != nil {
			return fmt.Sprintf("worker %d is not ready (starting or backing off)", sl.id)
		}
	}
	return ""
}

// handleUpgrade hands over and execs; it replies only if that failed.
func (s *Supervisor) handleUpgrade(ev evUpgrade) {
	if why := s.upgradeBlocker(); why != "" {
		ev.reply <- fmt.Errorf("upgrade refused: %s; try again in a moment", why)
		return
	}
	log := s.log.WithFields(logrus.Fields{"from": s.cfg.Version, "to": ev.version, "binary": ev.path})
	log.Info("upgrading drover in place: handing over to the new binary")
	h, kept, outputs, err := s.prepareHandover()
	if err != nil {
		kept.restore()
		s.resumeOutputs(outputs)
		ev.reply <- fmt.Errorf("upgrade failed, drover keeps running: %w", err)
		return
	}
	state, err := writeHandover(h)
	if err != nil {
		kept.restore()
		s.resumeOutputs(outputs)
		ev.reply <- fmt.Errorf("upgrade failed, drover keeps running: %w", err)
		return
	}
	s.logNotify(s.systemd.Status(fmt.Sprintf("upgrading drover %s -> %s", s.cfg.Version, ev.version)))
	// The new image pings as soon as it has adopted the workers.
	s.logNotify(s.systemd.Watchdog())
	env := append(os.Environ(), handoverEnv+"="+strconv.Itoa(int(state.Fd())))
	err = s.spawner.exec(ev.path, os.Args, env)
	// Still here: the exec failed, and nothing was lost.
	state.Close()
	kept.restore()
	s.resumeOutputs(outputs)
	log.WithError(err).Error("upgrade failed: exec of the new binary failed; drover keeps running")
	s.updateStatus()
	ev.reply <- fmt.Errorf("upgrade failed, drover keeps running: exec %s: %w", ev.path, err)
}

// detachedOutput is a worker's output, detached for the handover.
type detachedOutput struct {
	w     *worker
	files [2]*os.File
}

// resumeOutputs forwards the detached outputs again after a failed exec.
func (s *Supervisor) resumeOutputs(outs []detachedOutput) {
	for _, o := range outs {
		if o.files[0] == nil && o.files[1] == nil {
			continue
		}
		if p := s.processOf(o.w.pid); p != nil {
			p.setCapture(output.Resume(o.files, s.outputMeta(o.w.slot.id, o.w.pid, o.w.gen.number), s.output, output.Limits{}))
		}
	}
}

// prepareHandover builds the state and keeps every descriptor it names
// across exec.
func (s *Supervisor) prepareHandover() (*handover, keptFDs, []detachedOutput, error) {
	var kept keptFDs
	h := &handover{
		Format: HandoverFormat, Version: s.cfg.Version, Started: s.started, Upgraded: time.Now(),
		PinDir: s.pinDir, PinLockFD: -1, RemovePins: s.removePins,
		Restarts: s.restarts, Reloads: s.reloads, Recycles: s.recycles, Hung: s.hung,
		ReloadFailure: s.reloadFailure, Launches: s.launches,
		Counters: s.metrics.Carried(),
	}
	keep := func(sock *sockets.Socket) (handoverSocket, error) {
		fd, err := kept.keepConn(sock.File, sock.Name)
		return handoverSocket{FD: fd, Name: sock.Name, Addr: sock.Addr, Unlink: sock.Unlink()}, err
	}
	for i := range s.sockets {
		hs, err := keep(&s.sockets[i])
		if err != nil {
			return nil, kept, nil, err
		}
		h.Sockets = append(h.Sockets, hs)
	}
	if m := s.metricsSocket; m != nil {
		hs, err := keep(m)
		if err != nil {
			return nil, kept, nil, err
		}
		h.Metrics = &hs
	}
	if s.control != nil {
		fd, err := kept.keepConn(s.control, "the control socket")
		if err != nil {
			return nil, kept, nil, err
		}
		h.Control = &handoverSocket{FD: fd, Addr: s.control.Path()}
	}
	fd, err := kept.keepConn(s.workerNotify, "the worker notify socket")
	if err != nil {
		return nil, kept, nil, err
	}
	h.WorkerNotify = handoverSocket{FD: fd, Addr: s.workerNotify.Addr}
	if err := s.handOverPins(h, &kept); err != nil {
		return nil, kept, nil, err
	}
	outs, err := s.handOverSlots(h, &kept)
	return h, kept, outs, err
}

func (s *Supervisor) handOverPins(h *handover, kept *keptFDs) error {
	if s.pinLock != nil {
		fd, err := kept.keepConn(s.pinLock, "the pin lock")
		if err != nil {
			return err
		}
		h.PinLockFD = fd
	}
	exe := s.current.exe
	h.Generation = handoverGen{Number: s.current.number, Path: exe.path, FD: -1, Link: exe.link}
	if exe.file != nil {
		fd, err := kept.keepConn(exe.file, "the pinned executable")
		if err != nil {
			return err
		}
		h.Generation.FD = fd
	}
	return nil
}

// handOverSlots records every slot and its worker, detaching the
// worker's output last, once nothing else can fail.
func (s *Supervisor) handOverSlots(h *handover, kept *keptFDs) ([]detachedOutput, error) {
	for _, sl := range s.slots {
		w := sl.worker
		hs := handoverSlot{
			ID: sl.id, Failures: sl.failures, Consecutive: sl.consecutive, Restarts: sl.restarts,
			Recycles: sl.recycles, RecycleReason: sl.recycleReason, RecycleKind: string(sl.recycleKind),
			RecycleBackoff: sl.recycleBackoff, LastFailure: int(sl.lastFailure),
			Worker: handoverWorker{
				Pid: w.pid, Started: w.started, ReadyAt: w.readyAt, Status: w.status, LastPing: w.lastPing,
				WatchdogInterval: w.watchdogInterval, Memory: w.memory, Stdout: -1, Stderr: -1, Channel: -1,
			},
		}
		if p := s.processOf(w.pid); p != nil && p.channel != nil {
			fd, err := kept.keepConn(p.channel, fmt.Sprintf("worker %d's node channel", sl.id))
			if err != nil {
				return nil, err
			}
			hs.Worker.Channel = fd
		}
		if p := s.processOf(w.pid); p != nil {
			for _, fd := range p.journalStreams() {
				if err := kept.keep(fd); err != nil {
					return nil, fmt.Errorf("worker %d's journal stream: %w", sl.id, err)
				}
				hs.Worker.Streams = append(hs.Worker.Streams, fd)
			}
		}
		if cg := s.cgroupOfPid(w.pid); cg != nil {
			hs.Worker.Cgroup = cg.Name()
		}
		h.Slots = append(h.Slots, hs)
	}
	var outs []detachedOutput
	for i, sl := range s.slots {
		p := s.processOf(sl.worker.pid)
		if p == nil || p.capture() == nil {
			continue
		}
		files, err := p.capture().Detach(5 * time.Second)
		outs = append(outs, detachedOutput{sl.worker, files})
		if err != nil {
			return outs, err
		}
		for j, f := range files {
			if f == nil {
				continue
			}
			fd, err := kept.keepConn(f, fmt.Sprintf("worker %d's output", sl.id))
			if err != nil {
				return outs, err
			}
			if j == 0 {
				h.Slots[i].Worker.Stdout = fd
			} else {
				h.Slots[i].Worker.Stderr = fd
			}
		}
	}
	return outs, nil
}
