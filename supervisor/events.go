package supervisor

import (
	"fmt"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/notify"
)

// The loop's events: everything that happens to drover arrives as one of
// these, handled one at a time by handle.

type event any

type (
	evExited struct {
		w    *worker
		exit exit
	}
	evReady struct {
		w   *worker
		how string
	}
	evReadyTimeout struct{ w *worker }
	evStopTimeout  struct{ w *worker }
	evRestartDue   struct{ s *slot }
	evNotify       notify.Message
	evReload       struct {
		reply    chan<- error
		why      string
		announce bool // as SIGHUP: send RELOADING=1
	}
	// evControl carries a control request to the loop.
	evControl struct {
		req   control.Request
		reply chan control.Response
	}
)

func (s *Supervisor) handle(ev event) {
	switch ev := ev.(type) {
	case evExited:
		s.handleExit(ev.w, ev.exit)
	case evReady:
		s.handleReady(ev.w, ev.how)
	case evReadyTimeout:
		s.handleReadyTimeout(ev.w)
	case evStopTimeout:
		s.handleStopTimeout(ev.w)
	case evRestartDue:
		s.handleRestartDue(ev.s)
	case evNotify:
		s.handleNotify(notify.Message(ev))
	case evReload:
		s.requestReload(ev.reply, ev.why, ev.announce)
	case evControl:
		s.handleControl(ev)
	case evHealthSample:
		s.handleHealthSample(ev)
	case evRecycleDue:
		ev.w.slot.recycleTimer = nil
		s.requestRecycle(ev.w, ev.kind, ev.reason)
	case evUpgrade:
		s.handleUpgrade(ev)
	case evMetrics:
		ev.reply <- s.metricsSnapshot()
	case evHang:
		s.handleHang(ev)
	default:
		panic(fmt.Sprintf("supervisor: unknown event %T", ev))
	}
}
