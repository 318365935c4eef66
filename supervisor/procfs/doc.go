// Package procfs reads what drover needs to know about its workers from
// /proc, without their help: whether a worker waits for connections on the
// sockets it was given (ListeningOn, drover's default readiness and its
// liveness check), and how much CPU and memory it uses.
//
// The files it reads and their formats: proc(5) (/proc/<pid>/fd, fdinfo,
// stat, statm, task/<tid>/syscall, mem), and the eventpoll fdinfo lines of
// the kernel's fs/eventpoll.c ("tfd: ... events: ... ino: ... sdev: ...").
package procfs
