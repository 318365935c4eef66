package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/droverd/drover/supervisor/cgroup"
	"github.com/droverd/drover/supervisor/nodejs"
	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/proctree"
)

// strippedEnv lists what belongs to drover and must not leak into workers:
// systemd's messages to drover, and values drover sets per worker.
var strippedEnv = map[string]bool{
	"NOTIFY_SOCKET":     true,
	"WATCHDOG_USEC":     true,
	"WATCHDOG_PID":      true,
	"LISTEN_FDS":        true,
	"LISTEN_FDNAMES":    true,
	"LISTEN_PID":        true,
	"LISTEN_PIDFDID":    true,
	"DROVER_WORKER_ID":  true,
	"DROVER_GENERATION": true,
	"DROVER_TEST_HOOKS": true,
	handoverEnv:         true,
	// systemd's file descriptor store is drover's: a worker's FDSTORE=1
	// goes to drover, which keeps none.
	"FDSTORE": true,
	// The worker's stderr is drover's pipe, not the journal stream; a
	// logger that trusts JOURNAL_STREAM would bypass drover and lose
	// WORKER_ID.
	"JOURNAL_STREAM": true,
}

func init() {
	// drover's Node support sets them per worker (--node). Stripped even
	// without it: NODE_CHANNEL_FD from whoever started drover names an fd
	// the trampoline closes, and Node would open whatever a worker has
	// at that number.
	for _, k := range nodejs.Stripped {
		strippedEnv[k] = true
	}
}

// workerBaseEnv is environ without what belongs to drover.
func workerBaseEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strippedEnv[k] {
			env = append(env, kv)
		}
	}
	return env
}

// spawnRequest asks the spawner to start one process, or to exec.
type spawnRequest struct {
	cmd   *exec.Cmd
	exec  *execRequest
	reply chan error
}

// execRequest replaces drover's image (upgrade.go).
type execRequest struct {
	path       string
	argv, envv []string
}

// spawner starts every worker from one goroutine locked to its OS thread.
// Pdeathsig fires when the thread that forked the child exits, not the
// process; Go may retire idle threads, which would kill healthy workers.
// A thread that lives as long as the supervisor keeps Pdeathsig meaning
// "drover died".
type spawner struct {
	requests chan spawnRequest
	done     chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{requests: make(chan spawnRequest), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the goroutine ends with the supervisor, and the
		// thread with it, after every worker has been reaped.
		defer close(s.done)
		for req := range s.requests {
			if e := req.exec; e != nil {
				// Only returns if the exec failed.
				req.reply <- syscall.Exec(e.path, e.argv, e.envv)
				continue
			}
			req.reply <- req.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	s.requests <- spawnRequest{cmd: cmd, reply: reply}
	return <-reply
}

// exec replaces drover's image from the thread that forked every worker,
// the only thread exec keeps: a worker's Pdeathsig fires when the thread
// that forked it ends, and exec ends all the others. It returns only if
// the exec failed.
func (s *spawner) exec(path string, argv, envv []string) error {
	reply := make(chan error, 1)
	s.requests <- spawnRequest{exec: &execRequest{path, argv, envv}, reply: reply}
	return <-reply
}

func (s *spawner) close() {
	close(s.requests)
	<-s.done
}

// process is a started worker process and the means to learn its fate.
type process struct {
	cmd *exec.Cmd
	pid int
	// execStatus is drover's end of the trampoline's status channel
	// (execstatus.go).
	execStatus *net.UnixConn
	// channel is drover's end of a Node worker's IPC channel (--node),
	// else nil.
	channel *os.File
	// out is its output; a failed upgrade replaces it (upgrade.go), so it
	// is read through capture.
	outMu sync.Mutex
	out   *output.Capture
	// streams are its journal streams once the trampoline sent them
	// (under outMu: an upgrade hands them over).
	streams streams
	// cg is the worker's own cgroup, nil without delegation.
	cg  *cgroup.Worker
	log logrus.FieldLogger
}

// launch starts a worker through the trampoline with the sockets at fds
// 3.., then a Node worker's IPC channel (--node), then the exec status
// channel.
//
// The IPC channel comes before the status channel, not after: the trampoline
// marks every fd from the status fd up close-on-exec, so the channel
// stays open across its exec with no word to the trampoline, and nothing
// else can slip through. LISTEN_FDS does not count it.
func (s *Supervisor) launch(id int, gen *generation) (_ *process, err error) {
	statusR, statusW, err := newExecStatus()
	if err != nil {
		return nil, fmt.Errorf("start worker %d: %w", id, err)
	}
	defer statusW.Close()
	files := make([]*os.File, 0, len(s.sockets)+2)
	for _, sock := range s.sockets {
		files = append(files, sock.File)
	}
	var channel *os.File
	if s.cfg.Node {
		workerEnd, droverEnd, err := nodejs.NewChannel()
		if err != nil {
			statusR.Close()
			return nil, fmt.Errorf("start worker %d: %w", id, err)
		}
		// The worker has its copy once started; drover keeps only its end.
		defer workerEnd.Close()
		channel = droverEnd
		defer func() {
			if err != nil {
				droverEnd.Close()
			}
		}()
		files = append(files, workerEnd)
	}
	files = append(files, statusW)
	statusFD := 2 + len(files)

	cg, cgDir := s.workerCgroup(id), "-"
	if cg != nil {
		cgDir = cg.Path()
	}
	// The trampoline's journal argument: the identifier, and after a
	// newline (which no header field may hold) the unit; "-": no journal.
	identifier := "-"
	if s.cfg.Journal {
		identifier = s.cfg.LogIdentifier + "\n" + s.unit
	}
	args := append([]string{TrampolineArg, strconv.Itoa(statusFD), cgDir, identifier, gen.exe.execPath()}, s.cfg.Command...)
	out, err := output.NewCapture()
	if err != nil {
		if cg != nil {
			cg.Remove()
		}
		statusR.Close()
		return nil, fmt.Errorf("start worker %d: %w", id, err)
	}
	cmd := &exec.Cmd{
		Path:       s.cfg.Trampoline,
		Args:       append([]string{s.cfg.Command[0]}, args...),
		Env:        s.workerEnv(id, gen.number),
		ExtraFiles: files,
		// *os.File, so exec copies nothing itself.
		Stdout: out.Stdout,
		Stderr: out.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGKILL,
			// Its own process group: a terminal's Ctrl-C reaches drover
			// only, which then drains the workers with the stop signal.
			Setpgid: true,
		},
	}
	if err := s.spawner.start(cmd); err != nil {
		statusR.Close()
		out.Abort()
		if cg != nil {
			cg.Remove()
		}
		return nil, fmt.Errorf("start worker %d: %w", id, err)
	}
	if cg != nil {
		s.cgroupOf.Store(cmd.Process.Pid, cg)
	}
	out.Start(s.outputMeta(id, cmd.Process.Pid, gen.number), s.output, output.Limits{})
	return &process{cmd: cmd, pid: cmd.Process.Pid, execStatus: statusR, channel: channel, out: out, cg: cg,
		log: s.log.WithFields(logrus.Fields{"worker": id, "pid": cmd.Process.Pid, "generation": gen.number})}, nil
}

// outputMeta says whose output a Capture forwards.
func (s *Supervisor) outputMeta(slot, pid, generation int) output.Meta {
	return output.Meta{ID: slot, Pid: pid, Generation: generation, Identifier: s.cfg.LogIdentifier,
		Count: slotCounters{s.metrics, slot}}
}

func (s *Supervisor) workerEnv(id, generation int) []string {
	names := make([]string, len(s.sockets))
	for i, sock := range s.sockets {
		names[i] = sock.Name
	}
	env := s.baseEnv[:len(s.baseEnv):len(s.baseEnv)]
	if s.cfg.WorkerWatchdog > 0 {
		// WATCHDOG_PID, the worker's own pid, is the trampoline's.
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(s.cfg.WorkerWatchdog.Microseconds(), 10))
	}
	return append(env,
		"LISTEN_FDS="+strconv.Itoa(len(s.sockets)),
		"LISTEN_FDNAMES="+strings.Join(names, ":"),
		"NOTIFY_SOCKET="+s.workerNotify.Addr,
		"DROVER_WORKER_ID="+strconv.Itoa(id),
		"DROVER_GENERATION="+strconv.Itoa(generation),
	)
}

// wait blocks until the process is gone and says how it ended.
//
// The worker's last lines are forwarded first, so they are logged before
// its exit. EOF on its output comes at once unless a process it started
// still holds the pipes; that wait is bounded so a daemonized grandchild
// cannot delay the exit's handling and the restart (forwarding goes on).
func (p *process) wait() exit {
	msg, journalStreams := readExecStatus(p.execStatus)
	p.outMu.Lock()
	p.streams = journalStreams
	p.outMu.Unlock()
	// Cmd.Wait alone would hold an OS thread in waitid for as long as the
	// worker lives; WaitExit parks in the runtime poller on a pidfd, and
	// Cmd.Wait then reaps a zombie at once. On error, Cmd.Wait waits.
	proctree.WaitExit(context.Background(), p.pid)
	journalStreams.awaitRead()
	p.cmd.Wait()
	// Its cgroup goes before its output is waited for: a child that holds
	// the pipes is dead then, so EOF comes at once.
	p.removeCgroup()
	p.capture().Wait(200*time.Millisecond, 5*time.Second)
	e := exit{status: exitFailure(p.cmd.ProcessState), execErr: msg}
	// ProcessState is nil when Wait failed (the pid was reaped elsewhere).
	if ps := p.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.signal = ws.Signal()
		}
	}
	return e
}

// capture is the process's output, nil if drover does not forward it.
func (p *process) capture() *output.Capture {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	return p.out
}

// journalStreams are its journal streams, nil before the trampoline sent
// them or where it did not.
func (p *process) journalStreams() streams {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	return p.streams
}

func (p *process) setCapture(c *output.Capture) {
	p.outMu.Lock()
	p.out = c
	p.outMu.Unlock()
}

// removeCgroup kills whatever is left in the worker's cgroup, waits until
// it is empty and removes it.
func (p *process) removeCgroup() {
	if p.cg == nil {
		return
	}
	if err := p.cg.Kill(); err != nil {
		p.log.WithError(err).Warn("kill the worker's cgroup")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.cg.WaitEmpty(ctx); err != nil {
		p.log.WithError(err).Warn("the worker's cgroup does not empty")
		return
	}
	if err := p.cg.Remove(); err != nil {
		p.log.WithError(err).Warn("remove the worker's cgroup")
	}
}
