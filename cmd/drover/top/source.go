package top

import (
	"context"
	"errors"
	"time"

	"github.com/droverd/drover/supervisor/control"
)

// Source is where drover top reads a drover and acts on it. Its methods
// are called from bubbletea commands, off the UI's goroutine, and may run
// at the same time (a reload takes as long as the reload does, while the
// screen goes on refreshing).
type Source interface {
	// Status reads the unit (if any) and drover. With a unit, a Snapshot
	// with Unit set may come with an error about drover.
	Status(ctx context.Context) (Snapshot, error)
	// Reload asks drover to reload and waits for the result.
	Reload(ctx context.Context) error
	// Scale adds delta workers (or removes -delta); it returns the new
	// count.
	Scale(ctx context.Context, delta int) (int, error)
	// Logs returns the workers' and drover's last n log lines, oldest
	// first, or ErrNoLogs where there is no journal to read them from.
	Logs(ctx context.Context, n int) ([]string, error)
}

// ErrNoLogs: the Source has no log to read (a drover found by its control
// socket alone whose workers log to the journal, which only a unit name
// selects).
var ErrNoLogs = errors.New("no journal")

// Snapshot is one refresh's worth of state.
type Snapshot struct {
	Unit   *Unit           // nil for a drover found by its control socket alone
	Drover *control.Status // nil when drover could not be read
	// Control is the control socket's path, to say which drover this is
	// when there is no unit.
	Control string
}

// Unit is what systemd says of the service.
type Unit struct {
	Name        string
	ActiveState string
	SubState    string
	StatusText  string
	MainPID     uint32
	NRestarts   uint32
	ActiveSince time.Time
}
