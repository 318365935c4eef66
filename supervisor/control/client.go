package control

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
)

// Call sends one request to the drover listening at path and waits for
// its answer, as long as that takes (a reload waits for every new worker).
func Call(path string, req Request) (Response, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return Response{}, fmt.Errorf("connect to drover at %s: %w", path, err)
	}
	defer conn.Close()
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
			return Response{}, fmt.Errorf("send to drover at %s: %w", path, writeErr)
		}
		return Response{}, fmt.Errorf("read answer from drover at %s: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("malformed answer from drover at %s: %w", path, err)
	}
	return resp, nil
}
