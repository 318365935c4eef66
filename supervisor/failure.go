package supervisor

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// failureKind is why a worker failed: what decides the ERRNO= systemd sees
// with a failed reload, and, as the issues that follow need, whether a
// failure counts toward a crash loop.
type failureKind int

const (
	// failSpawn: drover could not start the process (pipes, fork).
	failSpawn failureKind = iota + 1
	// failResources: drover could not start it for want of fds, memory or
	// processes: the machine's trouble, not the app's, so it never counts
	// toward a crash loop.
	failResources
	// failExec: the trampoline could not exec the command.
	failExec
	// failExit: the worker exited by itself with a status.
	failExit
	// failSignal: the worker was killed by a signal drover did not send.
	failSignal
	// failNotReady: not ready within --ready-timeout; drover killed it.
	failNotReady
	// failRollback: a rollback could not restore the slot's worker.
	failRollback
	// failWatchdog: the worker stopped pinging WATCHDOG=1, or sent
	// WATCHDOG=trigger; drover killed it as hung.
	failWatchdog
	// failMemory: over --max-memory as soon as it was ready.
	failMemory
)

// String is the kind's name in metrics (the reason label).
func (k failureKind) String() string {
	switch k {
	case failSpawn:
		return "spawn"
	case failResources:
		return "resources"
	case failExec:
		return "exec"
	case failExit:
		return "exit"
	case failSignal:
		return "signal"
	case failNotReady:
		return "not-ready"
	case failRollback:
		return "rollback"
	case failWatchdog:
		return "watchdog"
	case failMemory:
		return "memory"
	}
	return "unknown"
}

// failure is one worker failure: its kind and the words the log, STATUS=
// and the reload's error use.
type failure struct {
	kind   failureKind
	detail string
}

func (f failure) String() string { return f.detail }

// errno is the ERRNO= systemd shows with a reload that failed this way.
func (f failure) errno() unix.Errno {
	switch f.kind {
	case failExec:
		return unix.ENOEXEC
	case failNotReady:
		return unix.ETIMEDOUT
	}
	return unix.ECHILD
}

// exitFailure describes how a process ended by itself.
func exitFailure(ps *os.ProcessState) failure {
	if ps == nil {
		return failure{failExit, "unknown"}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitFailure(ws)
	}
	return failure{failExit, fmt.Sprintf("exit status %d", ps.ExitCode())}
}

// waitFailure describes a wait status.
func waitFailure(ws syscall.WaitStatus) failure {
	if ws.Signaled() {
		return failure{failSignal, "killed by " + unix.SignalName(ws.Signal())}
	}
	return failure{failExit, fmt.Sprintf("exit status %d", ws.ExitStatus())}
}

// spawnFailure classifies an error starting a worker.
func spawnFailure(err error) failure {
	for _, errno := range []unix.Errno{unix.EMFILE, unix.ENFILE, unix.EAGAIN, unix.ENOMEM, unix.ENOBUFS} {
		if errors.Is(err, errno) {
			return failure{failResources, err.Error()}
		}
	}
	return failure{failSpawn, err.Error()}
}
