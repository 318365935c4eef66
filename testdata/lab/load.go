package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Load is a bounded HTTP load generator on 127.0.0.1: two clients, each
// sending one request at a time, until Stop, a request count or a time
// limit, whichever comes first.
//
//   - keep-alive: one connection for as many requests as the server allows;
//     a new one only after an answer with "Connection: close";
//   - new-conn: a new connection per request ("Connection: close"), paced
//     so that a run cannot use up the host's ephemeral ports.
//
// It speaks HTTP/1.1 itself instead of using net/http's client, which
// silently retries a GET whose reused connection was closed: every request
// here is sent once, and every failure is counted, by kind.
//
// Results are kept per phase: the test moves the generator from one phase
// to the next (say, "reload 3") and reads what each client saw in each.
type Load struct {
	addr   string
	bounds LoadBounds
	// answer matches a good answer's body; its groups named version and
	// generation, where it has them, are counted.
	answer *regexp.Regexp
	stop   chan struct{}
	ended  chan struct{}
	// Why the generator ended: "stopped" (by Stop), or the bound it hit.
	endReason string

	mu     sync.Mutex
	phases []*phase
}

// Bounds of one load run.
const (
	loadMaxDuration = 2 * time.Minute
	// keep-alive sends as fast as it is answered; this only caps a run
	// whose reloads hang.
	loadMaxKeepAlive = 2_000_000
	// new-conn: one connection per loadNewConnEvery at most, and at most
	// loadMaxNewConn of them: fewer than the 28,000 ephemeral ports a
	// connection's TIME_WAIT holds for a minute.
	loadMaxNewConn   = 20_000
	loadNewConnEvery = 2 * time.Millisecond
	// A request not answered within this counts as failed.
	loadRequestTimeout = 5 * time.Second
)

// LoadBounds bound one run of the load generator.
type LoadBounds struct {
	// MaxDuration ends the run if Stop has not by then.
	MaxDuration time.Duration
	// NewConnEvery paces the new-conn client, MaxNewConn caps it: a
	// connection's TIME_WAIT holds an ephemeral port for a minute.
	NewConnEvery time.Duration
	MaxNewConn   int
}

// DefaultLoadBounds are the lab's: a reload scenario is over within two
// minutes.
var DefaultLoadBounds = LoadBounds{MaxDuration: loadMaxDuration, NewConnEvery: loadNewConnEvery, MaxNewConn: loadMaxNewConn}

// phase is what both clients saw while it was current.
type phase struct {
	name    string
	clients [2]clientStats
}

const (
	keepAlive = iota
	newConn
)

var clientNames = [2]string{"keep-alive", "new-conn"}

// clientStats counts one client's requests in one phase.
type clientStats struct {
	ok int
	// connErrs are connections that could not be made; failed are requests
	// sent (or being sent) on a connection that got no good answer.
	connErrs, failed int
	errs             map[string]int // kind -> count, for both
	versions         map[string]int // version -> answers
	generations      map[string]int // generation -> answers
}

func (c clientStats) String() string {
	s := fmt.Sprintf("%d ok, %d failed, %d connection errors, versions %s", c.ok, c.failed, c.connErrs, countList(c.versions))
	if _, none := c.generations[""]; !none || len(c.generations) > 1 {
		s += ", generations " + countList(c.generations)
	}
	if len(c.errs) > 0 {
		s += ", errors " + countList(c.errs)
	}
	return s
}

// countList formats a count map in key order: "a:3 b:1".
func countList(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// startLoad starts both clients against 127.0.0.1:port, in a first phase
// called first, counting example-worker's answers as good.
func startLoad(port int, first string) *Load {
	return StartLoad(port, first, DefaultLoadBounds)
}

// startLoadFor is startLoad for a server whose good answers answer
// matches.
func startLoadFor(port int, first string, answer *regexp.Regexp) *Load {
	return newLoad(port, first, DefaultLoadBounds, answer)
}

// StartLoad starts both clients against 127.0.0.1:port within bounds, in a
// first phase called first, counting example-worker's answers as good.
func StartLoad(port int, first string, bounds LoadBounds) *Load {
	return newLoad(port, first, bounds, replyRE)
}

func newLoad(port int, first string, bounds LoadBounds, answer *regexp.Regexp) *Load {
	l := &Load{
		addr:   fmt.Sprintf("127.0.0.1:%d", port),
		bounds: bounds,
		answer: answer,
		stop:   make(chan struct{}),
		ended:  make(chan struct{}),
		phases: []*phase{{name: first}},
	}
	reasons := make(chan string, 2)
	var wg sync.WaitGroup
	wg.Go(func() { reasons <- l.run(keepAlive, loadMaxKeepAlive, 0) })
	wg.Go(func() { reasons <- l.run(newConn, bounds.MaxNewConn, bounds.NewConnEvery) })
	go func() {
		wg.Wait()
		l.endReason = <-reasons
		if r := <-reasons; r != "stopped" {
			l.endReason = r
		}
		close(l.ended)
	}()
	return l
}

// Stop ends the run and waits for both clients; it is safe to call more
// than once, and after the run ended by itself.
func (l *Load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.ended
}

// Ended reports whether the run has ended, and why.
func (l *Load) Ended() (bool, string) {
	select {
	case <-l.ended:
		return true, l.endReason
	default:
		return false, ""
	}
}

// Next starts a new phase and returns the index of the one it ended.
func (l *Load) Next(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phases = append(l.phases, &phase{name: name})
	return len(l.phases) - 2
}

// Phase returns a copy of phase i.
func (l *Load) Phase(i int) phase {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := *l.phases[i]
	for c := range p.clients {
		p.clients[c].errs = maps.Clone(p.clients[c].errs)
		p.clients[c].versions = maps.Clone(p.clients[c].versions)
		p.clients[c].generations = maps.Clone(p.clients[c].generations)
	}
	return p
}

// Current returns the index of the current phase.
func (l *Load) Current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.phases) - 1
}

// outcome is one request's result.
type outcome struct {
	connErr, failed     bool
	kind                string
	version, generation string
}

// record counts o in the current phase.
func (l *Load) record(client int, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.phases[len(l.phases)-1].clients[client]
	switch {
	case o.connErr:
		c.connErrs++
	case o.failed:
		c.failed++
	default:
		c.ok++
		if c.versions == nil {
			c.versions, c.generations = map[string]int{}, map[string]int{}
		}
		c.versions[o.version]++
		c.generations[o.generation]++
		return
	}
	if c.errs == nil {
		c.errs = map[string]int{}
	}
	c.errs[o.kind]++
}

// run is one client's loop; it returns why it ended.
func (l *Load) run(client, maxRequests int, every time.Duration) string {
	deadline := time.Now().Add(l.bounds.MaxDuration)
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	next := time.Now()
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return "stopped"
		default:
		}
		if n >= maxRequests {
			return fmt.Sprintf("%s sent its maximum of %d requests", clientNames[client], maxRequests)
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%s ran for its maximum of %v", clientNames[client], l.bounds.MaxDuration)
		}
		if every > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(every)
			if time.Until(next) < -every {
				next = time.Now() // answers were slow: do not burst to catch up
			}
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", l.addr, loadRequestTimeout)
			if err != nil {
				l.record(client, outcome{connErr: true, kind: "connect: " + errKind(err)})
				continue
			}
			conn, br = c, bufio.NewReader(c)
		}
		o, keep := request(conn, br, client == keepAlive, l.answer)
		l.record(client, o)
		if !keep {
			conn.Close()
			conn = nil
		}
	}
}

// request sends one GET on conn and reads the answer, which answer must
// match. keep says whether conn may carry the next request.
func request(conn net.Conn, br *bufio.Reader, keepAlive bool, answer *regexp.Regexp) (o outcome, keep bool) {
	conn.SetDeadline(time.Now().Add(loadRequestTimeout))
	req := "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
	if !keepAlive {
		req = "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
	}
	if _, err := io.WriteString(conn, req); err != nil {
		return outcome{failed: true, kind: "write: " + errKind(err)}, false
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return outcome{failed: true, kind: "read answer: " + errKind(err)}, false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return outcome{failed: true, kind: "read body: " + errKind(err)}, false
	}
	if resp.StatusCode != http.StatusOK {
		return outcome{failed: true, kind: "status " + resp.Status}, false
	}
	m := answer.FindStringSubmatch(string(body))
	if m == nil {
		return outcome{failed: true, kind: "not the server's answer"}, false
	}
	o = outcome{}
	if i := answer.SubexpIndex("version"); i > 0 {
		o.version = m[i]
	}
	if i := answer.SubexpIndex("generation"); i > 0 {
		o.generation = m[i]
	}
	return o, keepAlive && !resp.Close
}

// LoadCounts is what both clients saw in one phase, for callers outside
// the lab.
type LoadCounts struct {
	Name string
	// OK, Failed and ConnErrs add up both clients; PerClient has one line
	// per client (requests, failures by kind, versions, generations).
	OK, Failed, ConnErrs int
	Versions             map[string]int
	PerClient            []string
}

// Counts returns what both clients saw in phase i.
func (l *Load) Counts(i int) LoadCounts {
	ph := l.Phase(i)
	c := LoadCounts{Name: ph.name, Versions: map[string]int{}}
	for k, name := range clientNames {
		s := ph.clients[k]
		c.OK += s.ok
		c.Failed += s.failed
		c.ConnErrs += s.connErrs
		for v, n := range s.versions {
			c.Versions[v] += n
		}
		c.PerClient = append(c.PerClient, fmt.Sprintf("%-10s %s", name, s))
	}
	return c
}

var replyRE = regexp.MustCompile(`^hello from (?:example-worker|testworker) version=(?P<version>\S+) pid=(\d+) worker=(\S*) generation=(?P<generation>\S*)\n?$`)

// errKind names an error without the addresses and ports that make every
// instance unique.
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return portRE.ReplaceAllString(err.Error(), ":PORT")
}

var portRE = regexp.MustCompile(`:\d+`)
