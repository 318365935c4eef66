package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// unitInfo is what drover status shows of a unit, read from systemd over
// D-Bus (org.freedesktop.systemd1).
type unitInfo struct {
	Name        string    `json:"name"`
	LoadState   string    `json:"load_state"`
	ActiveState string    `json:"active_state"`
	SubState    string    `json:"sub_state"`
	MainPID     uint32    `json:"main_pid"`
	StatusText  string    `json:"status_text"`
	NRestarts   uint32    `json:"n_restarts"`
	ActiveSince time.Time `json:"active_since,omitzero"`
	// RuntimeDirectory lists the unit's RuntimeDirectory= names (under
	// /run for system units): drover's control socket is in the first.
	RuntimeDirectory []string `json:"runtime_directory,omitempty"`
}

// serviceName adds ".service" to a bare name, as systemctl does.
func serviceName(name string) string {
	if !strings.Contains(name, ".") {
		return name + ".service"
	}
	return name
}

// systemdBus talks to PID 1 on the system bus (DBUS_SYSTEM_BUS_ADDRESS
// points elsewhere, e.g. in tests). Reading properties needs no privilege.
type systemdBus struct{ conn *sddbus.Conn }

func connectSystemd(ctx context.Context) (*systemdBus, error) {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus: %w", err)
	}
	return &systemdBus{conn: conn}, nil
}

func (b *systemdBus) close() { b.conn.Close() }

func (b *systemdBus) unit(ctx context.Context, name string) (unitInfo, error) {
	u := unitInfo{Name: serviceName(name)}
	props, err := b.conn.GetUnitPropertiesContext(ctx, u.Name)
	if err != nil {
		return u, fmt.Errorf("read unit %s: %w", u.Name, err)
	}
	u.LoadState, _ = props["LoadState"].(string)
	if u.LoadState == "not-found" {
		return u, fmt.Errorf("no such unit: %s", u.Name)
	}
	u.ActiveState, _ = props["ActiveState"].(string)
	u.SubState, _ = props["SubState"].(string)
	if usec, ok := props["ActiveEnterTimestamp"].(uint64); ok && usec > 0 {
		u.ActiveSince = time.UnixMicro(int64(usec))
	}
	if !strings.HasSuffix(u.Name, ".service") {
		return u, nil
	}
	svc, err := b.conn.GetUnitTypePropertiesContext(ctx, u.Name, "Service")
	if err != nil {
		return u, fmt.Errorf("read service %s: %w", u.Name, err)
	}
	u.MainPID, _ = svc["MainPID"].(uint32)
	u.StatusText, _ = svc["StatusText"].(string)
	u.NRestarts, _ = svc["NRestarts"].(uint32)
	u.RuntimeDirectory, _ = svc["RuntimeDirectory"].([]string)
	return u, nil
}

// daemonReload makes systemd read unit files again.
func (b *systemdBus) daemonReload(ctx context.Context) error {
	if err := b.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemctl daemon-reload over D-Bus: %w", err)
	}
	return nil
}

// errNotDrover: the unit has no drover control socket.
var errNotDrover = errors.New("not run by drover")

// controlSocketOf finds drover's control socket of a unit: the unit file
// drover's units/ ship gives it RuntimeDirectory=, where drover run puts
// control.sock.
func controlSocketOf(u unitInfo) (string, error) {
	if len(u.RuntimeDirectory) == 0 {
		return "", fmt.Errorf("%s has no RuntimeDirectory=, so no drover control socket: %w (or its unit lacks RuntimeDirectory=)", u.Name, errNotDrover)
	}
	return filepath.Join("/run", u.RuntimeDirectory[0], "control.sock"), nil
}
