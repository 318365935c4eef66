package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Server serves /metrics on a listener drover owns.
type Server struct {
	http *http.Server
	l    net.Listener
}

// NewServer serves m on l once Serve is called.
func NewServer(m *Metrics, l net.Listener, log logrus.FieldLogger) *Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(m.registry,
		promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
			ErrorLog: errorLog{log},
			// A scrape while the loop is slow waits for it at most this
			// long (see snapshotTimeout in package supervisor).
			Timeout: 10 * time.Second,
		})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "drover: metrics are at /metrics")
	})
	return &Server{l: l, http: &http.Server{
		Handler: mux,
		// A scraper that connects and sends nothing must not hold a
		// goroutine and an fd forever.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}
}

// Addr is the listener's address.
func (s *Server) Addr() string { return s.l.Addr().String() }

// Serve serves until Close; it returns nil after Close.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics on %s: %w", s.Addr(), err)
	}
	return nil
}

// Close stops serving and closes the listener and every connection.
func (s *Server) Close() error { return s.http.Close() }

// errorLog gives promhttp's errors to drover's log.
type errorLog struct{ log logrus.FieldLogger }

func (e errorLog) Println(v ...any) { e.log.Warn(append([]any{"metrics: "}, v...)...) }
