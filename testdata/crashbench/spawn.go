package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// trampolineArg is the hidden first argument that makes this binary the
// trampoline: `crashbench __crashbench-exec PATH ARGV0 [ARGS...]`.
const trampolineArg = "__crashbench-exec"

// trampoline runs in the child between fork and the real program: it sets
// LISTEN_PID to this pid, which survives execve, and becomes PATH. It
// returns only if that fails, with a shell's 127.
func trampoline(args []string) int {
	if len(args) < 2 {
		fmt.Fprintf(os.Stderr, "crashbench %s: internal use only\n", trampolineArg)
		return 2
	}
	env := append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := syscall.Exec(args[0], args[1:], env)
	fmt.Fprintf(os.Stderr, "crashbench: exec %s: %v\n", args[0], err)
	return 127
}

// openListener is a listening TCP socket on 127.0.0.1 with a port the
// kernel picks, made as systemd makes one: blocking, so its receivers see
// what they would see under systemd. The caller owns the file.
func openListener() (*os.File, string, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	if err := syscall.Listen(fd, 511); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("getsockname: %w", err)
	}
	return f, fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port), nil
}

// activatedCommand is a command that starts as the trampoline and becomes
// path with argv, holding sock at fd 3 as a socket-activated process does.
// It has its own process group (a terminal's Ctrl-C reaches the bench only,
// which then tears down) and dies with the bench's spawning thread.
func activatedCommand(path string, argv []string, sock *os.File) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench's own binary for the trampoline: %w", err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID":
		default:
			env = append(env, kv)
		}
	}
	return &exec.Cmd{
		Path:       self,
		Args:       append([]string{argv[0], trampolineArg, path}, argv...),
		Env:        append(env, "LISTEN_FDS=1", "LISTEN_FDNAMES=http"),
		ExtraFiles: []*os.File{sock},
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}, nil
}

// spawner starts processes from one OS thread that lives as long as the
// bench: PR_SET_PDEATHSIG fires when the forking thread exits, not the
// process, and a thread Go retired would take its children with it.
type spawner struct {
	requests chan spawnRequest
}

type spawnRequest struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{requests: make(chan spawnRequest)}
	go func() {
		// Never unlocked: the thread ends with the bench.
		runtime.LockOSThread()
		for req := range s.requests {
			req.reply <- req.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	s.requests <- spawnRequest{cmd, reply}
	return <-reply
}
