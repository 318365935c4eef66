package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/droverd/drover/cmd/drover/pm2"
)

// initFromPM2 is drover init --from-pm2 FILE: the units of every app in a
// PM2 ecosystem file. Every app is mapped and checked before anything is
// printed or written, so bad input leaves nothing behind.
func initFromPM2(name string, rest []string, o *initOptions, stdout, stderr io.Writer) int {
	if err := checkFromPM2Flags(name, rest, o); err != nil {
		fmt.Fprintf(stderr, "drover init: %v\n", err)
		return exitUsage
	}
	drover, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "drover init: find drover's own path: %v\n", err)
		return 1
	}
	files, enable, notes, err := pm2Units(o, drover)
	if err != nil {
		fmt.Fprintf(stderr, "drover init: %v\n", err)
		return exitUsage
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, n)
	}
	return emitUnits(files, strings.Join(enable, " "), o, stdout, stderr)
}

// checkFromPM2Flags refuses what --from-pm2 takes from the file instead.
func checkFromPM2Flags(name string, rest []string, o *initOptions) error {
	switch {
	case name != "" || len(rest) > 0:
		return errors.New("--from-pm2 takes no NAME or command: the ecosystem file names the apps and their scripts")
	case len(o.listen) > 0:
		return errors.New("--listen: not with --from-pm2: each app's socket listens on its PORT")
	case o.metrics != "":
		return errors.New("--metrics: not with --from-pm2, whose apps cannot share one address: add one app's metrics socket with drover init NAME --metrics")
	}
	return nil
}

// pm2Units renders every app's units and collects what was not mapped.
func pm2Units(o *initOptions, drover string) (files []unitFile, enable, notes []string, err error) {
	node, _ := exec.LookPath("node") // "": Load says node is missing
	apps, err := pm2.Load(o.fromPM2, node)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(apps) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no apps", o.fromPM2)
	}
	seen := map[string]bool{} // unit file names
	for _, app := range apps {
		plan, unmapped, err := pm2.Map(app)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", o.fromPM2, err)
		}
		if seen[plan.Name+".service"] {
			return nil, nil, nil, fmt.Errorf("%s: two apps named %s: unit names must differ", o.fromPM2, plan.Name)
		}
		units, err := renderPM2App(plan, drover, o)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: app %s: %w", o.fromPM2, plan.Name, err)
		}
		for _, u := range units {
			if seen[u.name] {
				return nil, nil, nil, fmt.Errorf("%s: app %s: %s is another app's unit too: rename one", o.fromPM2, plan.Name, u.name)
			}
			seen[u.name] = true
		}
		files = append(files, units...)
		enable = append(enable, plan.Name+".socket")
		if plan.Calendar != "" {
			enable = append(enable, plan.Name+"-reload.timer")
		}
		for _, u := range unmapped {
			notes = append(notes, fmt.Sprintf("pm2: app %s: %s: %s", plan.Name, u.Option, u.Advice))
		}
	}
	return files, enable, notes, nil
}

// renderPM2App is one app's socket and service, and its reload timer.
func renderPM2App(plan pm2.Plan, drover string, o *initOptions) ([]unitFile, error) {
	ao := *o
	ao.listen = []string{strconv.Itoa(plan.Port)}
	ao.fdName = ""
	ao.runFlags = append([]string(nil), plan.RunFlags...)
	ao.dir, ao.env = plan.Dir, plan.Env
	ao.envSource = "PM2's cwd and env (drover init --from-pm2 " + o.fromPM2 + ")"
	if ao.user == "" {
		ao.user = plan.User
	}
	command := append([]string(nil), plan.Command...)
	if err := ao.resolveCommand(command); err != nil {
		if command[0] == "node" {
			return nil, errors.New("node not found on PATH: install Node.js, or set interpreter to its path")
		}
		return nil, err
	}
	// The flags came from the file: drover run must take them, or the
	// service would fail at its first start rather than here.
	if err := checkRunFlags(plan.RunFlags, command); err != nil {
		return nil, err
	}
	files := renderUnits(plan.Name, drover, command, &ao)
	if plan.Calendar != "" {
		files = append(files, reloadTimerUnits(plan.Name, plan.Cron, plan.Calendar)...)
	}
	return files, nil
}

// checkRunFlags parses flags as drover run would.
func checkRunFlags(flags, command []string) error {
	fs, ro := runFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(flags); err != nil {
		return fmt.Errorf("drover run %s: %w", strings.Join(flags, " "), err)
	}
	if _, err := ro.config(command); err != nil {
		return fmt.Errorf("drover run %s: %w", strings.Join(flags, " "), err)
	}
	return nil
}

// reloadTimerUnits are NAME-reload.timer and the NAME-reload.service it
// starts: PM2's cron_restart, as a reload, which drover does without
// dropping a connection where PM2 restarts.
func reloadTimerUnits(name, cron, calendar string) []unitFile {
	timer := fmt.Sprintf(`# Reloads %[1]s.service on PM2's cron_restart schedule (%[2]s): drover
# replaces the workers a batch at a time, without dropping a connection.
# systemctl list-timers shows the next run.

[Unit]
Description=%[1]s scheduled reload (PM2 cron_restart)

[Timer]
OnCalendar=%[3]s
Unit=%[1]s-reload.service

[Install]
WantedBy=timers.target
`, name, cron, calendar)
	service := fmt.Sprintf(`# Started by %[1]s-reload.timer.

[Unit]
Description=Reload %[1]s.service (PM2 cron_restart)

[Service]
Type=oneshot
# try-reload-or-restart reloads a running service and leaves a stopped one
# stopped: a socket-activated service may not have started yet. It fails,
# as systemctl reload does, when the new workers fail.
ExecStart=/usr/bin/systemctl try-reload-or-restart %[1]s.service
`, name)
	return []unitFile{{name + "-reload.timer", timer}, {name + "-reload.service", service}}
}
