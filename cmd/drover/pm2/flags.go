package pm2

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/droverd/drover/supervisor"
)

// pm2BackoffCap is where PM2 stops growing exp_backoff_restart_delay.
const pm2BackoffCap = 15 * time.Second

// durationFlag maps a PM2 time option to a drover run flag.
func (m *mapper) durationFlag(key, flag string) (time.Duration, error) {
	v, ok := m.get(key)
	if !ok {
		return 0, nil
	}
	d, err := durationValue(key, v)
	if err == nil {
		m.flag(flag, d.String())
	}
	return d, err
}

// stop: PM2 stops an app with SIGINT (kill_signal), then SIGKILL after
// kill_timeout. Apps written for PM2 drain on SIGINT, so drover sends it
// too, where its own default is SIGTERM.
func (m *mapper) stop() error {
	sig := "INT"
	if v, ok := m.get("kill_signal"); ok {
		s, err := stringValue("kill_signal", v)
		if err != nil {
			return err
		}
		if _, err := supervisor.ParseSignal(s); err != nil {
			return fmt.Errorf("kill_signal: %w", err)
		}
		sig = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	}
	m.flag("stop-signal", sig)
	_, err := m.durationFlag("kill_timeout", "stop-timeout")
	return err
}

// ready: wait_ready waits for process.send('ready'), which drover run
// --node turns into READY=1; listen_timeout bounds the wait.
func (m *mapper) ready() error {
	if v, ok := m.get("wait_ready"); ok {
		wait, err := boolValue("wait_ready", v)
		if err != nil {
			return err
		}
		if wait {
			m.flag("ready", "notify")
		}
	}
	_, err := m.durationFlag("listen_timeout", "ready-timeout")
	return err
}

// restarts maps PM2's crash handling to drover's backoff and crash-loop
// limit.
func (m *mapper) restarts() error {
	if _, err := m.durationFlag("min_uptime", "min-uptime"); err != nil {
		return err
	}
	if v, ok := m.get("max_restarts"); ok {
		n, err := intValue("max_restarts", v)
		if err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("max_restarts %d: want at least 1 (drover always restarts; a slot failing this often within --failure-window stops drover)", n)
		}
		m.flag("max-failures", strconv.FormatInt(n, 10))
	}
	if err := m.backoff(); err != nil {
		return err
	}
	if v, ok := m.get("autorestart"); ok {
		restart, err := boolValue("autorestart", v)
		if err != nil {
			return err
		}
		if !restart {
			m.note("autorestart", "false is not mapped: drover restarts every worker that exits; run a one-shot job as a Type=oneshot service instead")
		}
	}
	return nil
}

// backoff: restart_delay is a fixed pause, exp_backoff_restart_delay one
// that grows to 15s; drover's backoff grows from --backoff-min to
// --backoff-max, so a fixed pause is both.
func (m *mapper) backoff() error {
	delay, hasDelay := m.get("restart_delay")
	exp, hasExp := m.get("exp_backoff_restart_delay")
	switch {
	case hasExp:
		d, err := durationValue("exp_backoff_restart_delay", exp)
		if err != nil {
			return err
		}
		m.flag("backoff-min", d.String())
		m.flag("backoff-max", max(d, pm2BackoffCap).String())
		if hasDelay {
			m.note("restart_delay", "not mapped: exp_backoff_restart_delay sets drover's backoff; keep one")
		}
	case hasDelay:
		d, err := durationValue("restart_delay", delay)
		if err != nil {
			return err
		}
		m.flag("backoff-min", d.String())
		m.flag("backoff-max", d.String())
		m.note("restart_delay", "drover waits "+d.String()+" only after a worker that failed within --min-uptime; one that ran longer restarts at once")
	}
	return nil
}

// memory: max_memory_restart is bytes, or a size with K, M or G.
func (m *mapper) memory() error {
	v, ok := m.get("max_memory_restart")
	if !ok {
		return nil
	}
	s, err := stringValue("max_memory_restart", v)
	if err != nil {
		return err
	}
	s = strings.ToUpper(strings.TrimSpace(s))
	if _, err := supervisor.ParseSize(s); err != nil {
		return fmt.Errorf("max_memory_restart %q: want bytes or a size such as 300M or 1G", s)
	}
	m.flag("max-memory", s)
	return nil
}

// cron: cron_restart becomes a timer that reloads the service.
func (m *mapper) cron() error {
	v, ok := m.get("cron_restart")
	if !ok {
		return nil
	}
	s, err := stringValue("cron_restart", v)
	if err != nil {
		return err
	}
	cal, err := CronToCalendar(s)
	if err != nil {
		return fmt.Errorf("cron_restart: %w", err)
	}
	m.plan.Calendar, m.plan.Cron = cal, s
	return nil
}

// user: uid (or user) runs the app as that user instead of DynamicUser=.
func (m *mapper) user() error {
	v, ok := m.get("uid")
	if alias, aliasOK := m.get("user"); !ok && aliasOK {
		v, ok = alias, true
	}
	if !ok {
		return nil
	}
	s, err := stringValue("uid", v)
	if err == nil {
		m.plan.User = s
	}
	return err
}
