// Command example-worker is the program `make run` serves and the lab
// installs as /usr/bin/myapp: an unmodified socket-activated HTTP server, the
// kind of program drover exists to run. It follows the drain contract in the
// README, so reloads and stops under load lose no request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// version is set at build time (-ldflags "-X main.version=...") so tests can
// tell an old build from a new one after a reload.
var version = "dev"

func main() {
	drainFor := flag.Duration("drain", time.Second, "after the stop signal, how long to keep answering open connections (with Connection: close) before shutting down")
	flag.Parse()
	if err := run(*drainFor); err != nil {
		log.Printf("example-worker: %v", err)
		os.Exit(1)
	}
}

func run(drainFor time.Duration) error {
	// activation.Listeners checks LISTEN_PID against our own pid, exactly as
	// under systemd: drover's trampoline is what makes that true.
	listeners, err := activation.Listeners()
	if err != nil {
		return fmt.Errorf("take activated sockets: %w", err)
	}
	if len(listeners) == 0 {
		return errors.New("no sockets passed (LISTEN_FDS unset): run me under drover or systemd")
	}

	pid := os.Getpid()
	if every, err := time.ParseDuration(os.Getenv("EXAMPLE_TICK")); err == nil && every > 0 {
		// Numbered lines, so a test can tell a lost or doubled log line.
		go tick(every)
	}
	var draining atomic.Bool
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				// The client reconnects for its next request, to a live
				// worker; the server closes this connection after the answer.
				w.Header().Set("Connection", "close")
			}
			fmt.Fprintf(w, "hello from example-worker version=%s pid=%d worker=%s generation=%s\n",
				version, pid, os.Getenv("DROVER_WORKER_ID"), os.Getenv("DROVER_GENERATION"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)

	var serving sync.WaitGroup
	for _, l := range listeners {
		serving.Add(1)
		go func(l net.Listener) {
			defer serving.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				log.Printf("example-worker: serve %s: %v", l.Addr(), err)
			}
		}(l)
	}

	<-stop
	// The drain contract: stop accepting first, so new connections stay in
	// the shared backlog for the other workers; then answer what is already
	// open once more with Connection: close; only then shut down. Calling
	// Shutdown straight away can lose a connection Serve had just accepted.
	// (Not SetKeepAlivesEnabled(false): it also closes idle keep-alive
	// connections at once, losing requests already on their way.)
	for _, l := range listeners {
		l.Close()
	}
	draining.Store(true)
	time.Sleep(drainFor)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	serving.Wait()
	return nil
}

// tick writes "tick N" to stdout every interval, N counting from 1.
func tick(every time.Duration) {
	for n := 1; ; n++ {
		fmt.Printf("tick %d\n", n)
		time.Sleep(every)
	}
}
