package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// health is mode health: it serves like a well-behaved worker (the drain
// contract: stop accepting, answer with Connection: close, close idle
// connections after a second), pings systemd's watchdog protocol when
// WATCHDOG_USEC is given, and misbehaves on request:
//
//	/leak?mb=N  allocate and touch N MiB, and keep it
//	/hang       stop sending WATCHDOG=1 (it keeps serving)
//	/trigger    send WATCHDOG=trigger
//	/close      close its listeners (it keeps running, serving nobody)
//
// Every answer is "hello from testworker pid=P worker=W generation=G".
func health(stop <-chan os.Signal) error {
	files, err := listenFDs()
	if err != nil {
		return err
	}
	var (
		draining, hung atomic.Bool
		mu             sync.Mutex
		leaked         [][]byte
		listeners      []net.Listener
	)
	hello := fmt.Sprintf("hello from testworker version=health pid=%d worker=%s generation=%s\n", os.Getpid(), os.Getenv("DROVER_WORKER_ID"), os.Getenv("DROVER_GENERATION"))
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/leak", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		b := make([]byte, mb<<20)
		for i := range b {
			if i%4096 == 0 {
				b[i] = 1
			}
		}
		mu.Lock()
		leaked = append(leaked, b)
		mu.Unlock()
	})
	mux.HandleFunc("/hang", func(http.ResponseWriter, *http.Request) { hung.Store(true) })
	mux.HandleFunc("/close", func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range listeners {
			l.Close()
		}
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, r)
		fmt.Fprint(w, hello)
		if r.URL.Path == "/trigger" {
			// After the answer is out: drover kills a worker that
			// triggers its watchdog.
			w.(http.Flusher).Flush()
			daemon.SdNotify(false, "WATCHDOG=trigger")
		}
	})}
	for _, f := range files {
		l, err := net.FileListener(f)
		if err != nil {
			return fmt.Errorf("listener from fd %d: %w", f.Fd(), err)
		}
		f.Close()
		listeners = append(listeners, l)
		go srv.Serve(l)
	}
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		go func() {
			for range time.Tick(interval / 2) {
				if !hung.Load() {
					daemon.SdNotify(false, "WATCHDOG=1")
				}
			}
		}()
	}
	<-stop
	mu.Lock()
	for _, l := range listeners {
		l.Close()
	}
	mu.Unlock()
	draining.Store(true)
	time.Sleep(time.Second) // requests already on the wire arrive
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
