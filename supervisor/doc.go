// Package supervisor runs one worker process per usable CPU core over
// listening sockets that systemd (or drover itself, in dev mode) opened, and
// keeps systemd informed through sd_notify.
//
// Every worker receives the sockets exactly as systemd hands them to a single
// service process: at fds 3.. in the same order, with LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID equal to the worker's own pid. os/exec cannot
// run code between fork and exec, so workers start through a trampoline: the
// supervisor re-executes its own binary in a hidden mode (ExecWorker) that
// sets LISTEN_PID to its pid and execve's the worker, which keeps the pid.
//
// One goroutine, the event loop in Supervisor.Run, owns all state: slots,
// workers, generations and counters. Everything that blocks (waiting for a
// process, reading the workers' notify socket, polling /proc for readiness,
// timers, signals) runs in small goroutines that turn results into events
// for the loop. Worker lifecycles are explicit states whose legal transitions
// are listed in one place (state.go).
package supervisor
