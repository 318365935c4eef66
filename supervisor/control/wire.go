package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxRequest bounds a request; anything longer is refused.
const maxRequest = 64 << 10

// readTimeout bounds how long a client may take to send its request,
// so a stuck or malicious client cannot hold a connection forever.
const readTimeout = 5 * time.Second

// Request is one request on the control socket: a JSON object on one
// line.
type Request struct {
	Command string `json:"command"` // "reload", "status", "scale", "upgrade" or "logs"
	// Count is scale's argument: N, +N or -N.
	Count string `json:"count,omitempty"`
	// Lines is how many of the workers' last lines "logs" asks for.
	Lines int `json:"lines,omitempty"`
}

// Response answers a Request: a JSON object on one line.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Status answers "status"; Workers, the new count, answers "scale".
	Status  *Status `json:"status,omitempty"`
	Workers int     `json:"workers,omitempty"`
	// Lines answers "logs": the workers' last lines as drover printed
	// them, oldest first (a drover whose workers log to journald has
	// none: the journal has them).
	Lines []string `json:"lines,omitempty"`
}

// decodeRequest parses one request line.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	switch req.Command {
	case "reload", "status", "upgrade", "logs":
		return req, nil
	case "scale":
		if _, _, err := ParseScale(req.Count); err != nil {
			return Request{}, err
		}
		return req, nil
	case "":
		return Request{}, errors.New("malformed request: no command")
	}
	return Request{}, fmt.Errorf("unknown command %q", req.Command)
}
