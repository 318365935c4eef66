package lab

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
)

// Whatever the lab starts (a debootstrap, a container, a temp dir)
// registers how to undo it here, so that SIGINT or SIGTERM tears it down
// before the process exits: t.Cleanup does not run when a test binary is
// interrupted.
var interrupts struct {
	sync.Mutex
	next  int
	undo  map[int]func()
	armed bool
	fired bool
}

// ErrInterrupted is returned by lab steps asked to start after an
// interrupt arrived: the process is about to exit.
var ErrInterrupted = errors.New("lab interrupted")

// Interrupted reports whether SIGINT or SIGTERM arrived; steps check it
// before starting something new.
func Interrupted() bool {
	interrupts.Lock()
	defer interrupts.Unlock()
	return interrupts.fired
}

// OnInterrupt registers undo to run if the process gets SIGINT or SIGTERM
// before the returned cancel is called. Callers cancel once they undid the
// thing themselves. If the interrupt has already arrived, undo runs at once
// (the handler has taken its list): the caller raced the exit.
func OnInterrupt(undo func()) (cancel func()) {
	interrupts.Lock()
	if interrupts.fired {
		interrupts.Unlock()
		undo()
		return func() {}
	}
	defer interrupts.Unlock()
	if interrupts.undo == nil {
		interrupts.undo = map[int]func(){}
	}
	id := interrupts.next
	interrupts.next++
	interrupts.undo[id] = undo
	return func() {
		interrupts.Lock()
		defer interrupts.Unlock()
		delete(interrupts.undo, id)
	}
}

// HandleInterrupts makes sigs (SIGINT, SIGTERM) undo everything registered
// with OnInterrupt (newest first), then exit with 128+signal. Call it once,
// early (TestMain, main).
func HandleInterrupts(sigs ...os.Signal) {
	interrupts.Lock()
	defer interrupts.Unlock()
	if interrupts.armed {
		return
	}
	interrupts.armed = true
	got := make(chan os.Signal, 1)
	signal.Notify(got, sigs...)
	go func() {
		sig := <-got
		fmt.Fprintf(os.Stderr, "lab: got %v, tearing down\n", sig)
		interrupts.Lock()
		interrupts.fired = true
		undo := interrupts.undo
		interrupts.undo = nil
		interrupts.Unlock()
		ids := make([]int, 0, len(undo))
		for id := range undo {
			ids = append(ids, id)
		}
		// Newest first: a container goes before the directory its files
		// are bind-mounted from.
		slices.Sort(ids)
		for _, id := range slices.Backward(ids) {
			undo[id]()
		}
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
}
