package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// fakeSystemd exports the part of org.freedesktop.systemd1 drover uses, on
// a private dbus-daemon: unit and service properties, and Manager.Reload.
type fakeSystemd struct {
	addr    string
	units   map[string]map[string]map[string]dbus.Variant // unit -> interface -> props
	reloads atomic.Int32
}

type fakeProps struct {
	f    *fakeSystemd
	unit string
}

func (p fakeProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	props, ok := p.f.units[p.unit][iface]
	if !ok {
		return nil, dbus.MakeFailedError(fmt.Errorf("no interface %s", iface))
	}
	return props, nil
}

func (p fakeProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	v, ok := p.f.units[p.unit][iface][name]
	if !ok {
		return dbus.Variant{}, dbus.MakeFailedError(fmt.Errorf("no property %s.%s", iface, name))
	}
	return v, nil
}

type fakeManager struct{ f *fakeSystemd }

func (m fakeManager) Reload() *dbus.Error {
	m.f.reloads.Add(1)
	return nil
}

// fakeUnitStatus is one entry of Manager.ListUnits: a(ssssssouso).
type fakeUnitStatus struct {
	Name, Description, LoadState, ActiveState, SubState, Followed string
	Path                                                          dbus.ObjectPath
	JobID                                                         uint32
	JobType                                                       string
	JobPath                                                       dbus.ObjectPath
}

// ListUnits lists every unit of the fake, as systemd lists the units it
// has loaded (and those it could not find but something refers to).
func (m fakeManager) ListUnits() ([]fakeUnitStatus, *dbus.Error) {
	var list []fakeUnitStatus
	for name, ifaces := range m.f.units {
		str := func(k string) string { s, _ := ifaces["org.freedesktop.systemd1.Unit"][k].Value().(string); return s }
		list = append(list, fakeUnitStatus{
			Name: name, LoadState: str("LoadState"), ActiveState: str("ActiveState"), SubState: str("SubState"),
			Path: unitObjectPath(name), JobPath: "/",
		})
	}
	return list, nil
}

// unitObjectPath escapes a unit name as systemd does for its object paths.
func unitObjectPath(name string) dbus.ObjectPath {
	var b strings.Builder
	for _, c := range []byte(name) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

func startFakeSystemd(t *testing.T, units map[string]map[string]map[string]dbus.Variant) *fakeSystemd {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatal("dbus-daemon not installed (Debian package dbus-daemon; make deps installs it)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	addr := "unix:path=" + filepath.Join(dir, "bus")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>`+addr+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	startProcess(t, daemon, "--config-file="+conf, "--nofork", "--nopidfile")
	var conn *dbus.Conn
	deadline := time.Now().Add(waitLimit)
	for {
		conn, err = dbus.Connect(addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to the test bus: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeSystemd{addr: addr, units: units}
	for name := range units {
		if err := conn.Export(fakeProps{f, name}, unitObjectPath(name), "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Export(fakeManager{f}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}
	return f
}

func serviceUnit(active string, mainPID uint32, runtimeDir []string) map[string]map[string]dbus.Variant {
	return map[string]map[string]dbus.Variant{
		"org.freedesktop.systemd1.Unit": {
			"LoadState": dbus.MakeVariant("loaded"), "ActiveState": dbus.MakeVariant(active),
			"SubState": dbus.MakeVariant("running"), "ActiveEnterTimestamp": dbus.MakeVariant(uint64(time.Now().Add(-time.Minute).UnixMicro())),
		},
		"org.freedesktop.systemd1.Service": {
			"MainPID": dbus.MakeVariant(mainPID), "StatusText": dbus.MakeVariant("2/2 workers ready · generation 1 · 0 restarts"),
			"NRestarts": dbus.MakeVariant(uint32(1)), "RuntimeDirectory": dbus.MakeVariant(runtimeDir),
		},
	}
}

// drover status, scale and init against a running drover and a fake
// systemd on a private bus: the D-Bus side and the control socket side
// together, with the errors a user meets.
func TestStatusScaleInitWithFakeSystemd(t *testing.T) {
	// The unit's RuntimeDirectory= is under /run, as systemd makes it.
	runDir, err := os.MkdirTemp("/run", "drover-status-test-")
	if err != nil {
		t.Skipf("cannot make a runtime directory under /run (needs root): %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	control := filepath.Join(runDir, "control.sock")
	p := startProcess(t, bin.drover, "run", "--listen", "127.0.0.1:0", "--workers", "2", "--control", control, "--", bin.testworker, "-mode", "notify")
	p.stderr.waitFor(t, "all 2 workers ready")

	// A unit's StatusText carries what a worker said (a failure's reason,
	// drover's status line): its escape sequences must not reach the
	// terminal drover status prints on.
	evil := serviceUnit("inactive", 0, []string{"evil"})
	evil["org.freedesktop.systemd1.Service"]["StatusText"] = dbus.MakeVariant("failed: \x1b[2J\x1b]0;pwned\x07")
	bus := startFakeSystemd(t, map[string]map[string]map[string]dbus.Variant{
		"myapp.service":   serviceUnit("active", uint32(p.cmd.Process.Pid), []string{filepath.Base(runDir)}),
		"stopped.service": serviceUnit("inactive", 0, []string{"stopped"}),
		"evil.service":    evil,
		"plain.service":   serviceUnit("active", 1, nil),
		"nosuch.service": {"org.freedesktop.systemd1.Unit": {
			"LoadState": dbus.MakeVariant("not-found"), "ActiveState": dbus.MakeVariant("inactive"), "SubState": dbus.MakeVariant("dead"),
		}},
	})
	drover := func(args ...string) (string, int) {
		cmd := exec.Command(bin.drover, args...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.addr)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	out, code := drover("status", "myapp")
	if code != 0 || !strings.Contains(out, "myapp.service  active (running)") || len(regexp.MustCompile(`(?m)^\d+\s+\d+\s+1\s+ready\s`).FindAllString(out, -1)) != 2 || !strings.Contains(out, "testworker ready") {
		t.Errorf("drover status myapp: exit %d\n%s", code, out)
	}
	out, code = drover("status", "--json", "myapp")
	var report struct {
		Unit struct {
			ActiveState string `json:"active_state"`
			MainPID     int    `json:"main_pid"`
			NRestarts   int    `json:"n_restarts"`
		} `json:"unit"`
		Drover struct {
			Workers   int `json:"workers"`
			Processes []struct {
				Pid    int    `json:"pid"`
				State  string `json:"state"`
				Status string `json:"status"`
			} `json:"processes"`
		} `json:"drover"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != 0 {
		t.Fatalf("drover status --json: exit %d, %v\n%s", code, err, out)
	}
	if report.Unit.ActiveState != "active" || report.Unit.MainPID != p.cmd.Process.Pid || report.Unit.NRestarts != 1 || report.Drover.Workers != 2 || len(report.Drover.Processes) != 2 {
		t.Errorf("drover status --json: %+v", report)
	}

	if out, code := drover("scale", "myapp", "+1"); code != 0 || !strings.Contains(out, "scaling to 3 workers") {
		t.Errorf("drover scale myapp +1: exit %d %s", code, out)
	}
	p.stderr.waitFor(t, "scaled to 3 workers")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "nosuch"}, 1, "no such unit: nosuch.service"},
		{[]string{"status", "stopped"}, exitNotRunning, "stopped.service  inactive"},
		{[]string{"status", "evil"}, exitNotRunning, `status: failed: \x1b[2J\x1b]0;pwned\x07` + "\n"},
		{[]string{"status", "plain"}, 1, "not run by drover"},
		{[]string{"scale", "stopped", "2"}, 1, "stopped.service is not running"},
		{[]string{"scale", "myapp", "zero"}, exitUsage, `scale "zero"`},
	} {
		if out, code := drover(tc.args...); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("drover %v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}

	unitDir := t.TempDir()
	initArgs := []string{"init", "web", "--listen", "127.0.0.1:9090", "--install", "--unit-dir", unitDir, "--", bin.example}
	if out, code := drover(initArgs...); code != 0 || bus.reloads.Load() != 1 {
		t.Fatalf("drover init --install: exit %d, %d daemon-reloads\n%s", code, bus.reloads.Load(), out)
	}
	service, _ := os.ReadFile(filepath.Join(unitDir, "web.service"))
	socket, _ := os.ReadFile(filepath.Join(unitDir, "web.socket"))
	for _, want := range []string{"ExecStart=" + bin.drover + " run -- " + bin.example, "ExecReload=" + bin.drover + " reload", "RuntimeDirectory=web", "Type=notify"} {
		if !strings.Contains(string(service), want) {
			t.Errorf("web.service lacks %q", want)
		}
	}
	if !strings.Contains(string(socket), "\nListenStream=127.0.0.1:9090\n") || strings.Contains(string(socket)+string(service), "myapp") {
		t.Errorf("web.socket:\n%s", socket)
	}
	if out, code := drover(initArgs...); code != 1 || !strings.Contains(out, "--force overwrites it") {
		t.Errorf("second drover init --install: exit %d\n%s", code, out)
	}
	if verify, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(verify, "verify", filepath.Join(unitDir, "web.socket"), filepath.Join(unitDir, "web.service")).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}
