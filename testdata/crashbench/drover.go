package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// droverTarget is drover run, socket-activated by the bench. Its JSON log
// is read as it is written and turned into events stamped on arrival (the
// log's own timestamps have whole seconds only).
type droverTarget struct {
	cmd      *exec.Cmd
	pid      int
	where    string
	sock     *os.File
	logFile  *os.File
	tl       timeline
	exited   chan struct{}
	waitErr  error
	readDone chan struct{}

	mu   sync.Mutex
	tail []string         // drover's last lines, for errors
	seen map[int]procStat // every worker seen, for teardown
	// readyAt holds the pids drover logged "worker ready" for.
	readyAt map[int]bool
}

func startDrover(o *options, sp *spawner, flags []string) (_ *droverTarget, err error) {
	path, err := exec.LookPath(o.drover)
	if err != nil {
		return nil, fmt.Errorf("--drover: %w (make build)", err)
	}
	sock, addr, err := openListener()
	if err != nil {
		return nil, err
	}
	d := &droverTarget{where: addr, sock: sock, exited: make(chan struct{}), readDone: make(chan struct{}),
		seen: map[int]procStat{}, readyAt: map[int]bool{}}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	argv := append([]string{"drover", "run", "--workers", strconv.Itoa(o.workers), "--log-format", "json"}, flags...)
	argv = append(append(argv, "--", o.appPath), o.app[1:]...)
	if d.cmd, err = activatedCommand(path, argv, sock); err != nil {
		return nil, err
	}
	if o.droverLog != "" {
		if d.logFile, err = os.Create(o.droverLog); err != nil {
			return nil, err
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	err = sp.start(d.cmd)
	w.Close()
	if err != nil {
		r.Close()
		close(d.readDone)
		close(d.exited)
		return nil, fmt.Errorf("start drover: %w", err)
	}
	d.pid = d.cmd.Process.Pid
	go d.read(r)
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

func (d *droverTarget) name() string      { return "drover" }
func (d *droverTarget) addr() string      { return d.where }
func (d *droverTarget) events() *timeline { return &d.tl }

func (d *droverTarget) ready(pid int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readyAt[pid]
}

// read stamps drover's log lines as they arrive; the other lines (worker
// output, "[w0 123] ...") only go to the tail and the log file.
func (d *droverTarget) read(r *os.File) {
	defer close(d.readDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		now := time.Now()
		line := sc.Bytes()
		var rec struct {
			Msg  string `json:"msg"`
			Pid  int    `json:"pid"`
			In   int64  `json:"in"`
			Took int64  `json:"took"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg != "" {
			d.tl.add(event{at: now, what: rec.Msg, pid: rec.Pid, in: time.Duration(rec.In), took: time.Duration(rec.Took)})
		}
		if d.logFile != nil {
			d.logFile.Write(append(line, '\n'))
		}
		d.mu.Lock()
		if rec.Msg == "worker ready" {
			d.readyAt[rec.Pid] = true
		}
		d.tail = append(d.tail, string(line))
		if len(d.tail) > 20 {
			d.tail = d.tail[1:]
		}
		d.mu.Unlock()
	}
}

func (d *droverTarget) workers() ([]procStat, error) {
	select {
	case <-d.exited:
		d.mu.Lock()
		defer d.mu.Unlock()
		return nil, fmt.Errorf("drover exited (%v); its last lines:\n  %s", d.waitErr, strings.Join(d.tail, "\n  "))
	default:
	}
	kids, err := children(d.pid)
	if err != nil {
		return nil, err
	}
	var live []procStat
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range kids {
		if k.state != 'Z' {
			live = append(live, k)
			d.seen[k.pid] = k
		}
	}
	return live, nil
}

// close asks drover to stop (it drains its workers), kills its process
// group if it takes more than 10 s, then kills any worker still alive:
// their PR_SET_PDEATHSIG should have, but the bench does not rely on it.
func (d *droverTarget) close() {
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
		default:
			syscall.Kill(d.pid, syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				syscall.Kill(-d.pid, syscall.SIGKILL)
				syscall.Kill(d.pid, syscall.SIGKILL)
				<-d.exited
			}
		}
		d.mu.Lock()
		for _, st := range d.seen {
			if alive(st) {
				syscall.Kill(-st.pid, syscall.SIGKILL)
				syscall.Kill(st.pid, syscall.SIGKILL)
			}
		}
		d.mu.Unlock()
		select {
		case <-d.readDone:
		case <-time.After(2 * time.Second):
		}
	}
	d.sock.Close()
	if d.logFile != nil {
		d.logFile.Close()
	}
}
