package procfs

import (
	"strconv"
	"strings"
)

// parseSocketLink parses an fd link target "socket:[12345]".
func parseSocketLink(target string) (uint64, bool) {
	rest, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(rest, 10, 64)
	return ino, err == nil
}

type epollEntry struct{ events, ino, sdev uint64 }

// parseEpollEntry parses one line of an eventpoll fdinfo:
//
//	tfd:        6 events: 8000201d data: 3f87ae236f000001  pos:0 ino:44b6 sdev:9
//
// Fields come as "key: value" or "key:value"; events, ino and sdev are hex.
// Lines without all three (other fdinfo lines, old kernels) are not entries.
func parseEpollEntry(line []byte) (e epollEntry, ok bool) {
	fields := strings.Fields(string(line))
	if len(fields) == 0 || fields[0] != "tfd:" {
		return e, false
	}
	var have uint // a bit per field seen
	for i := 0; i < len(fields); i++ {
		key, val, _ := strings.Cut(fields[i], ":")
		if val == "" && i+1 < len(fields) {
			i++
			val = fields[i]
		}
		var dst *uint64
		var bit uint
		switch key {
		case "events":
			dst, bit = &e.events, 1
		case "ino":
			dst, bit = &e.ino, 2
		case "sdev":
			dst, bit = &e.sdev, 4
		default:
			continue
		}
		v, err := strconv.ParseUint(val, 16, 64)
		if err != nil {
			return e, false
		}
		*dst = v
		have |= bit
	}
	return e, have == 7
}

// parseSyscall parses /proc/<pid>/task/<tid>/syscall of a thread blocked in
// a syscall: "nr arg1 ... arg6 sp pc", arguments in hex. It returns false
// for "running" and for "-1 sp pc" (blocked, but not in a syscall).
func parseSyscall(line []byte) (nr int, args [6]uint64, ok bool) {
	fields := strings.Fields(string(line))
	if len(fields) < 7 {
		return 0, args, false
	}
	nr, err := strconv.Atoi(fields[0])
	if err != nil || nr < 0 {
		return 0, args, false
	}
	for i := range args {
		if args[i], err = strconv.ParseUint(fields[1+i], 0, 64); err != nil {
			return 0, args, false
		}
	}
	return nr, args, true
}

// waitCall is how a blocking syscall names the fds it waits on.
type waitCall int

const (
	waitNone   waitCall = iota
	waitAccept          // arg 1 is the fd
	waitPoll            // arg 1 points to struct pollfd[arg 2]
	waitSelect          // arg 1 is nfds, arg 2 points to the read fd_set
)

// waitCallOf classifies syscall nr of goarch. Numbers are literals, not
// unix.SYS_*, so that both tables build (and are tested) on any machine.
func waitCallOf(goarch string, nr int) waitCall {
	switch goarch {
	case "amd64":
		switch nr {
		case 43, 288: // accept, accept4
			return waitAccept
		case 7, 271: // poll, ppoll
			return waitPoll
		case 23, 270: // select, pselect6
			return waitSelect
		}
	case "arm64":
		switch nr {
		case 202, 242: // accept, accept4
			return waitAccept
		case 73: // ppoll
			return waitPoll
		case 72: // pselect6
			return waitSelect
		}
	}
	return waitNone
}
