package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/sockets"
)

// Handler answers one request that passed the permission check and was
// decoded. It runs in the connection's goroutine and may block (a reload
// is answered when it is done).
type Handler func(Request) Response

// Server is the control socket: a unix stream socket whose connections
// carry one request and one answer each. It is a security boundary: only
// root and drover's own user get in, checked with the kernel's peer
// credentials, whatever the file's mode says.
type Server struct {
	listener *net.UnixListener
	log      logrus.FieldLogger
	conns    sync.WaitGroup

	mu     sync.Mutex
	open   map[*net.UnixConn]bool
	closed bool
}

// Listen creates the control socket at path (mode 0600), replacing a stale
// socket a killed drover left but nothing else.
func Listen(path string, log logrus.FieldLogger) (*Server, error) {
	if err := sockets.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// Unlinked on close by net.UnixListener.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{listener: l, log: log, open: map[*net.UnixConn]bool{}}, nil
}

// writeTimeout bounds how long an answer may wait for a client that does
// not read it: drover's stop never waits on a client.
const writeTimeout = 5 * time.Second

// Serve accepts connections and answers them with h until Close; it
// returns once every connection it took is done. It survives what the
// kernel runs out of (EMFILE, ENFILE, ENOBUFS, ECONNABORTED): it logs once,
// waits a moment and accepts again, so a brush with the fd limit never
// leaves the control socket dead.
func (s *Server) Serve(h Handler) {
	defer s.conns.Wait()
	var pause time.Duration
	for {
		conn, err := s.listener.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			if pause == 0 {
				s.log.WithError(err).Warn("control socket: accept failed; retrying")
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if !s.track(conn, true) {
			conn.Close()
			return
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			defer s.track(conn, false)
			defer conn.Close()
			s.serveConn(conn, h)
		}()
	}
}

// track adds or removes an open connection; it refuses new ones once
// closed.
func (s *Server) track(conn *net.UnixConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.open, conn)
		return true
	}
	if s.closed {
		return false
	}
	s.open[conn] = true
	return true
}

// Close stops accepting and closes every open connection: a client
// waiting for an answer (a reload) gets EOF.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for conn := range s.open {
		conn.Close()
	}
	s.mu.Unlock()
	return s.listener.Close()
}

func (s *Server) serveConn(conn *net.UnixConn, h Handler) {
	respond := func(r Response) {
		b, _ := json.Marshal(r)
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		conn.Write(append(b, '\n'))
	}
	uid, pid, err := peerCredentials(conn)
	if err != nil {
		s.log.WithError(err).Warn("control connection without credentials refused")
		return
	}
	if uid != 0 && uid != os.Getuid() {
		s.log.WithFields(logrus.Fields{"uid": uid, "peer_pid": pid}).Warn("control connection refused: only root or drover's own user may control it")
		respond(Response{Error: "permission denied: only root or drover's own user"})
		return
	}
	conn.SetReadDeadline(time.Now().Add(readTimeout))
	line, err := bufio.NewReaderSize(conn, maxRequest).ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		respond(Response{Error: fmt.Sprintf("request longer than %d bytes", maxRequest)})
		return
	}
	if err != nil && len(line) == 0 {
		respond(Response{Error: fmt.Sprintf("read request: %v", err)})
		return
	}
	req, err := decodeRequest(line)
	if err != nil {
		respond(Response{Error: err.Error()})
		return
	}
	conn.SetReadDeadline(time.Time{})
	respond(h(req))
}

func peerCredentials(conn *net.UnixConn) (uid, pid int, err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, credErr
	}
	return int(cred.Uid), int(cred.Pid), nil
}

// Adopt serves on the listening socket an earlier drover image created
// at path (drover upgrade); Close still removes path.
func Adopt(f *os.File, path string, log logrus.FieldLogger) (*Server, error) {
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("adopt control socket %s: %w", path, err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("adopt control socket %s: not a unix socket", path)
	}
	// A listener made from a file does not unlink its path on close.
	ul.SetUnlinkOnClose(true)
	return &Server{listener: ul, log: log, open: map[*net.UnixConn]bool{}}, nil
}

// SyscallConn is the listening socket's, for handing it over across exec.
func (s *Server) SyscallConn() (syscall.RawConn, error) { return s.listener.SyscallConn() }

// Path is the control socket's path.
func (s *Server) Path() string { return s.listener.Addr().String() }
