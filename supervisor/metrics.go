package supervisor

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/droverd/drover/supervisor/metrics"
	"github.com/droverd/drover/supervisor/output"
	"github.com/droverd/drover/supervisor/sockets"
)

// snapshotTimeout bounds how long a scrape waits for the loop: a stuck
// loop is for systemd's watchdog to catch, not for scrapes to pile up on.
const snapshotTimeout = 5 * time.Second

// evMetrics asks the loop for the state a scrape exports.
type evMetrics struct{ reply chan metrics.Snapshot }

// takeMetricsSocket moves the socket systemd passed under the metrics
// name out of the workers' sockets: it is drover's, and a worker must
// not see it (nor count it in LISTEN_FDS).
func (s *Supervisor) takeMetricsSocket() error {
	name := s.cfg.MetricsSocket
	if name == "" {
		return nil
	}
	i := slices.IndexFunc(s.sockets, func(sock sockets.Socket) bool { return sock.Name == name })
	if i < 0 {
		names := make([]string, len(s.sockets))
		for j, sock := range s.sockets {
			names[j] = sock.Name
		}
		return usage(fmt.Errorf("--metrics-socket %q: systemd passed no socket of that name (LISTEN_FDNAMES=%s; set FileDescriptorName=%s in the metrics .socket unit)", name, cmp.Or(strings.Join(names, ":"), "(none)"), name))
	}
	sock := s.sockets[i]
	s.metricsSocket = &sock
	s.sockets = slices.Delete(s.sockets, i, i+1)
	if len(s.sockets) == 0 {
		return usage(fmt.Errorf("--metrics-socket %q: it is the only socket systemd passed; the workers need one of their own", name))
	}
	return nil
}

// openMetrics creates the metrics and, outside socket activation, opens
// --metrics-listen.
func (s *Supervisor) openMetrics() error {
	s.metrics = metrics.New(s.cfg.Version, s.metricsSnapshotWait)
	if s.metricsSocket == nil && s.cfg.MetricsListen != nil {
		if s.cfg.MetricsSocket != "" {
			s.log.Info("not socket-activated: serving metrics on --metrics-listen instead of --metrics-socket")
		}
		socks, err := sockets.Open([]sockets.ListenSpec{*s.cfg.MetricsListen})
		if err != nil {
			return asUsage(fmt.Errorf("--metrics-listen: %w", err))
		}
		s.metricsSocket = &socks[0]
	} else if s.metricsSocket == nil && s.cfg.MetricsSocket != "" {
		s.log.WithField("socket", s.cfg.MetricsSocket).Warn("not socket-activated and no --metrics-listen: no metrics endpoint")
	}
	if s.metricsSocket == nil {
		return nil
	}
	l, err := net.FileListener(s.metricsSocket.File)
	if err != nil {
		return usage(fmt.Errorf("metrics socket %s: not a stream socket drover can serve HTTP on: %w", s.metricsSocket.Addr, err))
	}
	s.metricsServer = metrics.NewServer(s.metrics, l, s.log)
	return nil
}

// MetricsAddr is where metrics are served ("" if nowhere).
func (s *Supervisor) MetricsAddr() string {
	if s.metricsServer == nil {
		return ""
	}
	return s.metricsServer.Addr()
}

func (s *Supervisor) serveMetrics() {
	if s.metricsServer == nil {
		return
	}
	s.log.WithField("address", s.metricsServer.Addr()).Info("serving metrics at /metrics")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.metricsServer.Serve(); err != nil {
			s.log.WithError(err).Error("metrics endpoint stopped")
		}
	}()
}

func (s *Supervisor) closeMetrics() {
	if s.metricsServer != nil {
		s.metricsServer.Close()
	}
	if s.metricsSocket != nil {
		s.metricsSocket.Close()
	}
}

// metricsSnapshotWait is what a scrape calls: the loop takes the
// snapshot, and the /proc and cgroup reads happen here, off the loop.
func (s *Supervisor) metricsSnapshotWait() (metrics.Snapshot, error) {
	reply := make(chan metrics.Snapshot, 1)
	timer := time.NewTimer(snapshotTimeout)
	defer timer.Stop()
	select {
	case s.events <- evMetrics{reply}:
	case <-s.done:
		return metrics.Snapshot{}, errors.New("drover stopped")
	case <-timer.C:
		return metrics.Snapshot{}, fmt.Errorf("drover's event loop did not answer within %v", snapshotTimeout)
	}
	snap := <-reply
	for i := range snap.Slots {
		sl := &snap.Slots[i]
		if !sl.HasWorker {
			continue
		}
		sl.RSSBytes = s.treeMemory(sl.Pid, nil)
		if d, ok := s.cpuTime(sl.Pid); ok {
			sl.CPUSeconds = d.Seconds()
		}
	}
	return snap, nil
}

// slotCounters gives a slot's output counters to package output.
type slotCounters struct {
	m    *metrics.Metrics
	slot int
}

func (c slotCounters) Counters(stream string) (lines, dropped output.Counter) {
	return c.m.OutputCounters(c.slot, stream)
}

// metricsSnapshot is the loop's side of a scrape.
func (s *Supervisor) metricsSnapshot() metrics.Snapshot {
	snap := metrics.Snapshot{Phase: s.phase.String(), MaxFailures: s.cfg.MaxFailures, ReloadFailing: s.reloadFailure != ""}
	if s.current != nil {
		snap.Generation = s.current.number
	}
	now := time.Now()
	for _, sl := range s.slots {
		sl.pruneFailures(now, s.cfg.FailureWindow)
		m := metrics.Slot{ID: sl.id, RecentFailures: len(sl.failures)}
		if w := sl.worker; w != nil {
			m.HasWorker, m.Pid = true, w.pid
			m.StartTime = float64(w.started.UnixNano()) / 1e9
		}
		snap.Slots = append(snap.Slots, m)
		if sl.worker == nil && sl.next == nil {
			snap.Workers = append(snap.Workers, metrics.Worker{Slot: sl.id, State: "backing-off"})
		}
	}
	for _, w := range s.byPid {
		snap.Workers = append(snap.Workers, metrics.Worker{Slot: w.slot.id, State: w.shownState()})
	}
	return snap
}
