package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The control socket lets `drover reload` (ExecReload=) and later the
// operator commands talk to a running drover. It is a security boundary:
// only root and drover's own user get in, checked with the kernel's peer
// credentials, whatever the file's mode says.

// maxControlRequest bounds a request; anything longer is refused.
const maxControlRequest = 64 << 10

// controlReadTimeout bounds how long a client may take to send its request,
// so a stuck or malicious client cannot hold a connection forever.
const controlReadTimeout = 5 * time.Second

// ControlRequest is one request on the control socket: a JSON object on one
// line.
type ControlRequest struct {
	Command string `json:"command"` // "reload", "status" or "scale"
	// Count is scale's argument: N, +N or -N.
	Count string `json:"count,omitempty"`
}

// ControlResponse answers a ControlRequest: a JSON object on one line.
type ControlResponse struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Status answers "status"; Workers, the new count, answers "scale".
	Status  *Status `json:"status,omitempty"`
	Workers int     `json:"workers,omitempty"`
}

// decodeControlRequest parses one request line.
func decodeControlRequest(line []byte) (ControlRequest, error) {
	var req ControlRequest
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return ControlRequest{}, fmt.Errorf("malformed request: %w", err)
	}
	switch req.Command {
	case "reload", "status":
		return req, nil
	case "scale":
		if _, _, err := ParseScale(req.Count); err != nil {
			return ControlRequest{}, err
		}
		return req, nil
	case "":
		return ControlRequest{}, errors.New("malformed request: no command")
	}
	return ControlRequest{}, fmt.Errorf("unknown command %q", req.Command)
}

// evControl carries a request from a control connection to the loop.
type evControl struct {
	req   ControlRequest
	reply chan ControlResponse
}

type controlServer struct {
	listener *net.UnixListener
	path     string
}

func listenControl(path string) (*controlServer, error) {
	if err := removeStaleUnixSocket(path); err != nil {
		return nil, usage(fmt.Errorf("control socket: %w", err))
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
	return &controlServer{listener: l, path: path}, nil
}

// serveControl accepts connections until the listener is closed.
func (s *Supervisor) serveControl() {
	defer s.wg.Done()
	for {
		conn, err := s.control.listener.AcceptUnix()
		if err != nil {
			return // closed by cleanup
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.handleControlConn(conn)
		}()
	}
}

func (s *Supervisor) handleControlConn(conn *net.UnixConn) {
	respond := func(r ControlResponse) {
		b, _ := json.Marshal(r)
		conn.Write(append(b, '\n'))
	}
	uid, pid, err := peerCredentials(conn)
	if err != nil {
		s.log.WithError(err).Warn("control connection without credentials refused")
		return
	}
	if uid != 0 && uid != os.Getuid() {
		s.log.WithFields(map[string]any{"uid": uid, "peer_pid": pid}).Warn("control connection refused: only root or drover's own user may control it")
		respond(ControlResponse{Error: "permission denied: only root or drover's own user"})
		return
	}
	conn.SetReadDeadline(time.Now().Add(controlReadTimeout))
	line, err := bufio.NewReaderSize(conn, maxControlRequest).ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		respond(ControlResponse{Error: fmt.Sprintf("request longer than %d bytes", maxControlRequest)})
		return
	}
	if err != nil && len(line) == 0 {
		respond(ControlResponse{Error: fmt.Sprintf("read request: %v", err)})
		return
	}
	req, err := decodeControlRequest(line)
	if err != nil {
		respond(ControlResponse{Error: err.Error()})
		return
	}
	conn.SetReadDeadline(time.Time{})
	reply := make(chan ControlResponse, 1)
	s.post(evControl{req: req, reply: reply})
	select {
	case r := <-reply:
		if r.Status != nil {
			// Off the loop: measuring CPU takes a moment.
			sampleUsage(r.Status, 200*time.Millisecond)
		}
		respond(r)
	case <-s.done:
		respond(ControlResponse{Error: "drover stopped"})
	}
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

// Control sends one request to the drover listening at path and waits for
// its answer, as long as that takes (a reload waits for every new worker).
func Control(path string, req ControlRequest) (ControlResponse, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return ControlResponse{}, fmt.Errorf("connect to drover at %s: %w", path, err)
	}
	defer conn.Close()
	b, err := json.Marshal(req)
	if err != nil {
		return ControlResponse{}, err
	}
	// drover may answer (a refusal) and close before reading the request,
	// so a failed write is reported only if no answer follows it.
	_, writeErr := conn.Write(append(b, '\n'))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if writeErr != nil {
			return ControlResponse{}, fmt.Errorf("send to drover at %s: %w", path, writeErr)
		}
		return ControlResponse{}, fmt.Errorf("read answer from drover at %s: %w", path, err)
	}
	var resp ControlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return ControlResponse{}, fmt.Errorf("malformed answer from drover at %s: %w", path, err)
	}
	return resp, nil
}
