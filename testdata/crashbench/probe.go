package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

const (
	// probeTimeout bounds one probe, connect to last byte. A probe that
	// takes longer counts as failed.
	probeTimeout = time.Second
	// crashTimeout bounds one kill's wait for a replacement.
	crashTimeout = 10 * time.Second
	// maxInFlight and maxProbes bound the load one kill sends.
	maxInFlight = 32
	maxProbes   = 5000
)

// errNoPid: the app answered without saying who it is; no wait will fix it.
var errNoPid = errors.New("the answer names no pid: the app must send X-Pid or pid=N in the body (--app)")

var request = []byte("GET /?nocount HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")

// answer is one probe's outcome: the pid that answered, or why none did.
type answer struct {
	pid int
	err error
	at  time.Time
}

// probe is one request on a new connection, never retried: a dial, a
// write, a read to EOF. Anything but a 200 naming a pid is a failure.
func probe(addr string) answer {
	a := answer{}
	a.pid, a.err = probeOnce(addr)
	a.at = time.Now()
	return a
}

func probeOnce(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write(request); err != nil {
		return 0, err
	}
	resp, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("not a 200: %.40q", resp)
	}
	return answerPid(resp)
}

// answerPid finds who answered: an X-Pid header, else "pid=N" in the body.
func answerPid(resp []byte) (int, error) {
	head, body, _ := bytes.Cut(resp, []byte("\r\n\r\n"))
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("X-Pid")) {
			return strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if _, rest, ok := bytes.Cut(body, []byte("pid=")); ok {
		end := 0
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		return strconv.Atoi(string(rest[:end]))
	}
	return 0, errNoPid
}

// waitServing returns the target's workers once there are want of them,
// each has answered at least once and the target counts each as ready;
// answered carries over between calls, so a settled target costs one look
// at /proc.
func waitServing(ctx context.Context, t target, want int, answered map[int]bool, within time.Duration) ([]procStat, error) {
	deadline := time.Now().Add(within)
	for {
		pids, err := t.workers()
		if err != nil {
			return nil, err
		}
		all, unanswered := len(pids) == want, false
		for _, p := range pids {
			all = all && answered[p.pid] && t.ready(p.pid)
			unanswered = unanswered || !answered[p.pid]
		}
		if all {
			return pids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: not every worker answered and was ready within %v (workers %v, answered %v)", t.name(), within, pids, answered)
		}
		if !unanswered {
			// Only the supervisor's own readiness is missing: wait for its
			// log without reading /proc, which costs CPU a starting worker
			// could use.
			for _, p := range pids {
				for !t.ready(p.pid) && time.Now().Before(deadline) {
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
			}
			continue
		}
		// A few at once: one idle worker would win most single
		// connections.
		results := make(chan answer, 4)
		for range cap(results) {
			go func() { results <- probe(t.addr()) }()
		}
		var lastErr error
		for range cap(results) {
			if a := <-results; a.err == nil {
				answered[a.pid] = true
			} else if errors.Is(a.err, errNoPid) {
				lastErr = a.err
			}
		}
		if lastErr != nil {
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// crash is one kill and its outcome.
type crash struct {
	victim int
	newPid int
	at     time.Time     // when the SIGKILL was sent
	took   time.Duration // until the first answer from newPid
	failed int           // probes that got no answer
}

// killAndProbe SIGKILLs the oldest of workers and sends a probe on a new
// connection every interval, without waiting for earlier ones (one stuck
// on the dying worker must not stop the clock), until one is answered by
// a pid that is none of workers. It then waits for the probes in flight, so
// their failures count.
func killAndProbe(ctx context.Context, t target, workers []procStat, interval time.Duration) (crash, error) {
	victim := workers[0]
	known := map[int]bool{}
	for _, w := range workers {
		known[w.pid] = true
		if w.start < victim.start {
			victim = w
		}
	}
	c := crash{victim: victim.pid}
	results := make(chan answer, maxInFlight)
	inFlight, sent := 0, 0
	defer func() {
		// After an early return, the probes still out end on their own.
		go func(n int) {
			for range n {
				<-results
			}
		}(inFlight)
	}()
	send := func() {
		inFlight++
		sent++
		go func() { results <- probe(t.addr()) }()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	c.at = time.Now()
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		return c, fmt.Errorf("%s: kill worker %d: %w", t.name(), victim.pid, err)
	}
	deadline := time.After(crashTimeout)
	send()
	for c.newPid == 0 {
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-deadline:
			return c, fmt.Errorf("%s: no answer from a new worker within %v of killing %d (%d probes failed)", t.name(), crashTimeout, victim.pid, c.failed)
		case <-tick.C:
			if inFlight < maxInFlight && sent < maxProbes {
				send()
			}
		case a := <-results:
			inFlight--
			switch {
			case a.err != nil:
				c.failed++
			case !known[a.pid]:
				c.newPid, c.took = a.pid, a.at.Sub(c.at)
			}
		}
	}
	for ; inFlight > 0; inFlight-- {
		if a := <-results; a.err != nil {
			c.failed++
		}
	}
	return c, nil
}
