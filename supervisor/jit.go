package supervisor

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeExecuteHint is added to the failure of a worker that a JIT's
// crash killed before it was ever ready, under MemoryDenyWriteExecute=:
// V8 (Node.js), the JVM and LuaJIT need memory both writable and
// executable, are refused it, and die by SIGTRAP, SIGSEGV or SIGILL, with
// nothing in their output that says why.
const writeExecuteHint = "the unit has MemoryDenyWriteExecute=yes, under which a JIT (Node.js, Java, LuaJIT) cannot run: " +
	"remove it (systemctl edit UNIT: MemoryDenyWriteExecute=no) or write the units again with drover init, which leaves it out for JIT programs"

// jitCrash reports whether sig is how a JIT dies when refused writable
// and executable memory.
func jitCrash(sig syscall.Signal) bool {
	return sig == syscall.SIGTRAP || sig == syscall.SIGSEGV || sig == syscall.SIGILL
}

// writeExecuteDenied reports whether this process may not map memory that
// is both writable and executable. systemd's MemoryDenyWriteExecute=
// (a seccomp filter, or PR_SET_MDWE on newer kernels and systemd) does
// exactly that, and the workers inherit it: asking for one page is the
// one test that works for both, and what the JIT will do.
func writeExecuteDenied() bool {
	b, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
	}
	unix.Munmap(b)
	return false
}
