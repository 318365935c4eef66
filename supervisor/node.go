package supervisor

import (
	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/nodejs"
	"github.com/droverd/drover/supervisor/notify"
)

// Node workers (--node, package nodejs): the preload is installed once,
// and every worker's environment loads it. The preload's messages come on
// each worker's IPC channel and enter the loop as the workers' sd_notify
// datagrams do, so readiness (--ready notify) and the worker watchdog
// treat process.send('ready') and the heartbeat as READY=1 and WATCHDOG=1.

// nodeChannelFD is the worker's fd of its IPC channel: right after the
// sockets (launch).
func (s *Supervisor) nodeChannelFD() int { return 3 + len(s.sockets) }

// setupNode installs the preload and adds what it needs to the workers'
// base environment; all of it is the same for every worker.
func (s *Supervisor) setupNode() error {
	if !s.cfg.Node {
		return nil
	}
	path, err := nodejs.Install(s.pinDir)
	if err != nil {
		return err
	}
	socks := make([]nodejs.Socket, len(s.sockets))
	for i, sock := range s.sockets {
		socks[i] = nodejs.NewSocket(3+i, sock.Name, sock.Addr)
	}
	s.baseEnv = nodejs.Env(s.baseEnv, path, socks, unix.SignalName(s.cfg.StopSignal), s.nodeChannelFD())
	s.log.WithField("preload", path).Debug("node workers load drover's preload")
	return nil
}

// readChannel turns a Node worker's messages into notify events until its
// channel is closed (process.wait's caller closes it once the worker is
// gone); done is closed after the last event was handed to the loop.
func (s *Supervisor) readChannel(p *process, done chan<- struct{}) {
	defer s.wg.Done()
	defer close(done)
	nodejs.Read(p.channel, func(fields map[string]string) {
		// The channel is the worker's own, so its pid is the sender's.
		s.post(evNotify(notify.Message{Pid: p.pid, Fields: fields}))
	})
}
