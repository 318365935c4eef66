package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Call sends one request to the drover listening at path and waits for
// its answer, at most timeout from the connect to the last byte: a drover
// that is stuck, or a socket nobody serves, is a clear error instead of a
// command that hangs.
func Call(path string, req Request, timeout time.Duration) (Response, error) {
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("connect to drover at %s: %w", path, timeoutErr(err, timeout))
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	conn.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	// drover may answer (a refusal) and close before reading the request,
	// so a failed write is reported only if no answer follows it.
	_, writeErr := conn.Write(append(b, '\n'))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if writeErr != nil {
			return Response{}, fmt.Errorf("send to drover at %s: %w", path, timeoutErr(writeErr, timeout))
		}
		return Response{}, fmt.Errorf("read answer from drover at %s: %w", path, timeoutErr(err, timeout))
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("malformed answer from drover at %s: %w", path, err)
	}
	return resp, nil
}

// timeoutErr says what a deadline means for the user.
func timeoutErr(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer within %v: drover is busy or stuck (%w)", timeout, err)
	}
	return err
}
