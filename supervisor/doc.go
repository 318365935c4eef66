// Package supervisor runs one worker process per usable CPU core over
// listening sockets that systemd (or drover itself, in dev mode) opened, and
// keeps systemd informed through sd_notify. It owns the lifecycle; each
// protocol and Linux interface it speaks has a package of its own:
//
//	sockets   socket activation and --listen (sd_listen_fds(3))
//	notify    sd_notify both ways: to systemd, and the workers' NOTIFY_SOCKET
//	journal   journald's native protocol and drover's own logrus hook
//	output    worker stdout and stderr: pipes, queue, lines, sinks
//	control   the control socket: wire types, server, client
//	procfs    /proc: readiness (does a worker wait on its sockets?), CPU, RSS
//	cpus      how many CPUs this process may use (--workers auto)
//	nodejs    Node workers (--node): the preload, its environment, the IPC channel
//
// Every worker receives the sockets exactly as systemd hands them to a single
// service process: at fds 3.. in the same order, with LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID equal to the worker's own pid. os/exec cannot
// run code between fork and exec, so workers start through a trampoline: the
// supervisor re-executes its own binary in a hidden mode (ExecWorker) that
// sets LISTEN_PID to its pid and execve's the worker, which keeps the pid.
//
// One goroutine, the event loop in Supervisor.Run, owns all state: the
// phase, slots, workers, generations and counters. Everything that blocks
// (waiting for a process, reading the workers' notify socket, polling /proc
// for readiness, timers, signals, control connections) runs in small
// goroutines that turn results into events for the loop. The supervisor's
// phase and every worker's and generation's life are explicit states whose
// legal moves are listed in one place (state.go). The loop reaches
// processes only through env (env.go), so tests can drive it with fakes.
//
// Files: supervisor.go (New, the loop, event dispatch), workers.go (a
// worker's start, readiness, exit, restart and stop), reload.go (rollouts
// and rollbacks), scale.go, status.go (STATUS= and the snapshot),
// control.go (answering the control socket), failure.go (why a worker
// failed), env.go and spawn.go, pin.go, trampoline.go (launching),
// probe.go (readiness polling), node.go (--node: the preload's
// environment, the workers' IPC channels read into the loop), config.go.
package supervisor
