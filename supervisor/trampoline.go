package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/journal"
)

// TrampolineArg is the hidden first argument that makes drover's binary act
// as the trampoline: `drover __exec-worker STATUSFD CGROUP JOURNAL PATH
// ARGV0 [ARGS...]`, CGROUP being the worker's cgroup directory or "-",
// JOURNAL the SYSLOG_IDENTIFIER of its output in journald or "-".
const TrampolineArg = "__exec-worker"

// execFailedCode is the trampoline's exit code when execve fails, as a
// shell's 127 for "command not found"; the reason travels on the status fd.
const execFailedCode = 127

// ExecWorker is the trampoline, called with the arguments after
// TrampolineArg. It runs in the worker's process between fork and the
// worker's own exec: it joins the worker's cgroup, if it has one, so that
// everything the worker starts is in it from the first instruction; sets
// LISTEN_PID to this pid, which the worker keeps across execve; and
// replaces itself with the worker. It returns only if that fails, with the
// exit code to use.
//
// The trampoline joins the cgroup itself rather than being started in it
// with clone3(CLONE_INTO_CGROUP): systemd's seccomp filters
// (SystemCallFilter=, which the shipped unit sets) make clone3 fail with
// ENOSYS on purpose, and Go's os/exec does not fall back.
//
// The status fd is a channel to the supervisor (execstatus.go). It is
// close-on-exec, so a successful execve closes it with nothing written
// but the journal streams; a failed one writes the reason, so the
// supervisor can tell "could not exec" from "crashed".
func ExecWorker(args []string) int {
	if len(args) < 5 {
		fmt.Fprintf(os.Stderr, "drover %s: internal use only\n", TrampolineArg)
		return 2
	}
	statusFD, err := strconv.Atoi(args[0])
	if err != nil || statusFD < 3 {
		fmt.Fprintf(os.Stderr, "drover %s: bad status fd %q\n", TrampolineArg, args[0])
		return 2
	}
	closeOnExecFrom(statusFD)
	cgroupDir, identifier, path, argv := args[1], args[2], args[3], args[4:]
	if cgroupDir != "-" {
		// "0" is the writer itself.
		if err := os.WriteFile(cgroupDir+"/cgroup.procs", []byte("0"), 0); err != nil {
			unix.Write(statusFD, []byte(fmt.Sprintf("join the worker's cgroup: %v", err)))
			return execFailedCode
		}
	}
	environ := os.Environ()
	if identifier != "-" {
		environ = connectJournal(identifier, environ, statusFD)
	}
	env := workerOwnEnv(environ, os.Getpid())
	err = unix.Exec(path, argv, env)
	// The supervisor reports it, naming the command rather than the pin.
	unix.Write(statusFD, []byte(fmt.Sprintf("exec %s: %v", path, err)))
	return execFailedCode
}

// closeOnExecFrom marks every fd from first up close-on-exec, so the worker
// gets exactly stdio and its sockets, as from systemd. Go opens everything
// close-on-exec, but drover may have inherited stray fds from whatever
// started it (a shell, an IDE; not systemd, which starts services clean).
func closeOnExecFrom(first int) {
	if err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
}

// workerOwnEnv sets what systemd sets to the pid of the process it starts:
// LISTEN_PID; WATCHDOG_PID with a WATCHDOG_USEC (drover's watchdog for
// the worker); and SYSTEMD_EXEC_PID where systemd set it for drover (a
// program that compares them with getpid() must see its own pid).
func workerOwnEnv(environ []string, pid int) []string {
	self := strconv.Itoa(pid)
	env := make([]string, 0, len(environ)+2)
	watchdog := false
	for _, kv := range environ {
		if strings.HasPrefix(kv, "SYSTEMD_EXEC_PID=") {
			kv = "SYSTEMD_EXEC_PID=" + self
		}
		watchdog = watchdog || strings.HasPrefix(kv, "WATCHDOG_USEC=")
		env = append(env, kv)
	}
	if watchdog {
		env = append(env, "WATCHDOG_PID="+self)
	}
	return append(env, "LISTEN_PID="+self)
}

// connectJournal connects the worker's stdout and stderr to journald's
// stream socket, as systemd does for a service, so journald reads its
// output itself, at its own pace, under the worker's own pid (it takes
// the pid of the connecting process, which the worker is after exec), and
// drover is out of the data path. Where journald cannot be reached, the
// worker keeps drover's pipes and drover forwards its output. It returns
// environ with JOURNAL_STREAM naming the worker's stderr, as systemd sets
// it, and sends drover the streams on statusFD.
func connectJournal(journalArg string, environ []string, statusFD int) []string {
	identifier, unit, _ := strings.Cut(journalArg, "\n")
	out, err := journal.ConnectStream(identifier, unit, 6)
	if err != nil {
		return environ
	}
	errFD, err := journal.ConnectStream(identifier, unit, 3)
	if err != nil {
		unix.Close(out)
		return environ
	}
	// dup3 without O_CLOEXEC: the worker keeps them; the old pipes close.
	if unix.Dup3(out, 1, 0) != nil || unix.Dup3(errFD, 2, 0) != nil {
		return environ
	}
	unix.Close(out)
	unix.Close(errFD)
	sendStreams(statusFD)
	if id, err := journal.StreamID(2); err == nil {
		environ = append(environ, "JOURNAL_STREAM="+id)
	}
	return environ
}
