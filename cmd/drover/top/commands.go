package top

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// Deadlines for the Source's calls, so a stuck drover shows as an error
// on a screen that still answers its keys. A reload waits as long as
// drover reload does by default.
const (
	refreshTimeout = 10 * time.Second
	reloadTimeout  = 10 * time.Minute
)

type (
	tickMsg     struct{}
	snapshotMsg struct {
		snap    Snapshot
		err     error
		logs    []string
		logsErr error
		at      time.Time
	}
	reloadedMsg struct{ err error }
	scaledMsg   struct {
		workers int
		err     error
	}
)

// refresh reads a snapshot and the latest log lines.
func (m *Model) refresh() tea.Cmd {
	src, n, now := m.src, m.opts.LogLines, m.now
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		snap, err := src.Status(ctx)
		logs, logsErr := src.Logs(ctx, n)
		return snapshotMsg{snap: snap, err: err, logs: logs, logsErr: logsErr, at: now()}
	}
}

func (m *Model) reload() tea.Cmd {
	src := m.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
		defer cancel()
		return reloadedMsg{err: src.Reload(ctx)}
	}
}

func (m *Model) scale(delta int) tea.Cmd {
	src := m.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		n, err := src.Scale(ctx, delta)
		return scaledMsg{workers: n, err: err}
	}
}
