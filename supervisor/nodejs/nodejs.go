package nodejs

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Script is drover.js, the preload.
//
//go:embed drover.js
var Script []byte

// ShippedPath is where the drover packages install drover.js.
const ShippedPath = "/usr/lib/drover/node/drover.js"

// Install returns the path of a drover.js that is this drover's: the
// shipped one when it has the same content (a stable path, the one that
// shows in the app's stack traces), else a copy written into dir. A
// shipped file of another drover version (a dev build beside the package)
// is not used: the preload and drover speak one protocol.
func Install(dir string) (string, error) {
	return install(dir, ShippedPath)
}

func install(dir, shipped string) (string, error) {
	if b, err := os.ReadFile(shipped); err == nil && bytes.Equal(b, Script) {
		return shipped, nil
	}
	if dir == "" {
		return "", errors.New("write the node preload: no runtime directory for it")
	}
	// Written beside and renamed over: a drover that upgraded in place
	// finds the earlier image's read-only copy there.
	path := filepath.Join(dir, "drover.js")
	tmp := path + ".new"
	os.Remove(tmp)
	if err := os.WriteFile(tmp, Script, 0o444); err != nil {
		return "", fmt.Errorf("write the node preload: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write the node preload: %w", err)
	}
	return path, nil
}

// Socket is one inherited socket as drover.js reads it from
// DROVER_NODE_SOCKETS: a TCP socket by host and port, a unix socket by
// path (an abstract one with Node's leading NUL).
type Socket struct {
	FD   int    `json:"fd"`
	Name string `json:"name"`
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	Path string `json:"path,omitempty"`
}

// NewSocket describes the socket at fd from its local address as package
// sockets writes it: "host:port", "[v6]:port" or "unix:/path".
func NewSocket(fd int, name, addr string) Socket {
	s := Socket{FD: fd, Name: name}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if abstract, ok := strings.CutPrefix(path, "@"); ok {
			path = "\x00" + abstract
		}
		s.Path = path
		return s
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		s.Host = host
		s.Port, _ = strconv.Atoi(port)
	}
	return s
}

// Environment variables Env sets; drover removes them from what it was
// given itself, so none reaches a worker but its own.
const (
	envSockets     = "DROVER_NODE_SOCKETS"
	envStopSignal  = "DROVER_STOP_SIGNAL"
	envChannelFD   = "NODE_CHANNEL_FD"
	envChannelMode = "NODE_CHANNEL_SERIALIZATION_MODE"
)

// Stripped lists the variables that belong to drover's Node support, to
// be removed from drover's own environment before it reaches workers. The
// channel variables name an fd of whoever set them, which the trampoline
// closes: Node would open whatever the worker has at that number.
var Stripped = []string{envSockets, envStopSignal, envChannelFD, envChannelMode}

// Env returns environ with what a Node worker needs: preload appended to
// NODE_OPTIONS (after the user's own, so theirs apply first), the
// sockets, the stop signal, and the IPC channel at channelFD in Node's
// JSON mode, the one fork uses by default.
func Env(environ []string, preload string, socks []Socket, stopSignal string, channelFD int) []string {
	if socks == nil {
		socks = []Socket{} // [], not null
	}
	list, err := json.Marshal(socks)
	if err != nil {
		panic(err) // ints and strings
	}
	opts := requireOption(preload)
	env := make([]string, 0, len(environ)+5)
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
			if v = strings.TrimSpace(v); v != "" {
				opts = v + " " + opts
			}
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"NODE_OPTIONS="+opts,
		envSockets+"="+string(list),
		envStopSignal+"="+stopSignal,
		envChannelFD+"="+strconv.Itoa(channelFD),
		envChannelMode+"=json",
	)
}

// requireOption is --require=path as NODE_OPTIONS reads it: a path with a
// space, quote or backslash in double quotes, with \ and " escaped.
// drover.js removes exactly this from NODE_OPTIONS again.
func requireOption(path string) string {
	if !strings.ContainsAny(path, " \t\n\r\v\f\"\\") {
		return "--require=" + path
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `--require="` + r.Replace(path) + `"`
}

// NewChannel makes the IPC channel of one worker: a unix stream
// socketpair, Node's kind for fork. The worker's end goes to the worker's
// ExtraFiles; drover keeps its own end. Both are close-on-exec in drover,
// so neither leaks into another worker (exec dup2s the worker's end to
// its fd, without the flag).
func NewChannel() (worker, drover *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("node IPC socketpair: %w", err)
	}
	// Non-blocking, so that os.File reads through the poller and Close
	// ends a Read under way.
	if err := unix.SetNonblock(fds[1], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("node IPC socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "node-ipc-worker"), os.NewFile(uintptr(fds[1]), "node-ipc"), nil
}

// maxMessage bounds one message drover reads; longer ones (an app sending
// its own data to its parent) are skipped whole, never buffered.
const maxMessage = 64 << 10

// Read reads the worker's messages from r until it fails or ends, calling
// fn with the sd_notify fields of each message drover knows (Parse).
func Read(r io.Reader, fn func(fields map[string]string)) error {
	br := bufio.NewReaderSize(r, maxMessage)
	skipping := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case err != nil:
			return err
		case skipping:
			skipping = false
			continue
		}
		if fields := Parse(line); fields != nil {
			fn(fields)
		}
	}
}

// Parse reads one message of Node's JSON serialization (a JSON value per
// line) as sd_notify fields: "ready" (process.send('ready'), PM2's
// wait_ready) is READY=1, drover.js's heartbeat {"drover":"watchdog"} is
// WATCHDOG=1. Anything else is the app's or Node's own (cluster's,
// a handle's) and nil: ignored.
func Parse(line []byte) map[string]string {
	var msg any
	if json.Unmarshal(line, &msg) != nil {
		return nil
	}
	switch m := msg.(type) {
	case string:
		if m == "ready" {
			return map[string]string{"READY": "1"}
		}
	case map[string]any:
		if m["drover"] == "watchdog" {
			return map[string]string{"WATCHDOG": "1"}
		}
	}
	return nil
}
