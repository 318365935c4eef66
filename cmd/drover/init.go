package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor/sockets"
	"github.com/droverd/drover/units"
)

func initCmd() *cobra.Command {
	fs, o := initFlags()
	c := &cobra.Command{
		Use:   "init NAME --listen ADDR... [--metrics ADDR] [--user USER] [--jit|--no-jit] [--install [--force]] -- COMMAND [ARGS...] | --from-pm2 FILE [--install [--force]]",
		Short: "write NAME.socket and NAME.service for COMMAND",
		Long: `Writes the unit pair for running COMMAND under drover, made from the
commented, hardened myapp.socket and myapp.service drover ships: every
ListenStream= from --listen, ExecStart= running COMMAND through drover,
ExecReload= for drover reload. Prints them, or with --install writes them to
--unit-dir and asks systemd to reload its configuration over D-Bus; then
systemctl enable --now NAME.socket starts serving. Refuses to overwrite
existing units without --force.

--metrics ADDR adds NAME-metrics.socket, a socket of drover's own for
Prometheus (FileDescriptorName=metrics, kept from the workers), and runs
drover with --metrics-socket metrics: scrape http://ADDR/metrics.

For a program with a JIT (node, java, dotnet, luajit, pypy, php, ..., by
name, symlink target or shebang) the service leaves MemoryDenyWriteExecute=
out, which the JIT cannot run under; --jit and --no-jit override the guess.
A Node.js command also gets drover run --node.

--from-pm2 FILE writes the units of every app in a PM2 ecosystem file
(ecosystem.config.js, evaluated with node, .json or .yaml): the socket on
its PORT, the service with its command, cwd, env and drover run flags from
its options, and NAME-reload.timer for cron_restart. What it cannot map is
listed on stderr with what to do instead.`,
		// COMMAND's own flags are never drover's, with or without "--".
		Annotations: map[string]string{annotationCommandAt: "1"},
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(initCommand(o, args, c.ArgsLenAtDash(), c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

type initOptions struct {
	listen  []string
	fdName  string
	metrics string // ListenStream= of NAME-metrics.socket, "" for none
	user    string
	install bool
	force   bool
	unitDir string
	jit     bool // --jit: leave MemoryDenyWriteExecute= out
	noJIT   bool // --no-jit: keep it, whatever the command
	fromPM2 string
	// Set by drover init itself, from the command or a PM2 app.
	runFlags   []string // drover run's flags, before "--"
	dir        string   // WorkingDirectory=
	env        []string // Environment=, KEY=VALUE
	envSource  string   // what the comment above them names
	jitComment string   // replaces MemoryDenyWriteExecute=; "" keeps it
	netlink    bool     // RestrictAddressFamilies= gets AF_NETLINK (node)
}

func initFlags() (*pflag.FlagSet, *initOptions) {
	o := &initOptions{}
	fs := pflag.NewFlagSet("drover init", pflag.ContinueOnError)
	fs.Func("listen", "`[NAME=]ADDR` for ListenStream=: 8080, 127.0.0.1:8080, [::1]:8080 or unix:/path (repeatable; NAME becomes FileDescriptorName=)", func(s string) error {
		addr := s
		if name, rest, ok := strings.Cut(s, "="); ok && !strings.Contains(name, ":") {
			spec, err := sockets.ParseListen(name + "=127.0.0.1:1") // checks the name only
			if err != nil {
				return err
			}
			if o.fdName != "" && o.fdName != spec.Name {
				return fmt.Errorf("--listen %q: one socket unit has one FileDescriptorName (already %q)", s, o.fdName)
			}
			o.fdName, addr = spec.Name, rest
		}
		addr, err := listenStreamAddr(addr)
		if err != nil {
			return err
		}
		o.listen = append(o.listen, addr)
		return nil
	})
	fs.Func("metrics", "`ADDR` for drover's Prometheus metrics: writes NAME-metrics.socket listening there (127.0.0.1:9464, or unix:/path)", func(s string) error {
		addr, err := listenStreamAddr(s)
		if err == nil {
			o.metrics = addr
		}
		return err
	})
	fs.StringVar(&o.user, "user", "", "run as this existing user instead of a fresh DynamicUser=")
	fs.BoolVar(&o.install, "install", false, "write the units to --unit-dir and reload systemd's configuration")
	fs.BoolVar(&o.force, "force", false, "with --install, overwrite existing units")
	fs.StringVar(&o.unitDir, "unit-dir", "/etc/systemd/system", "where --install writes the units")
	fs.BoolVar(&o.jit, "jit", false, "the command has a JIT: leave MemoryDenyWriteExecute= out (guessed for node, java, ...)")
	fs.BoolVar(&o.noJIT, "no-jit", false, "keep MemoryDenyWriteExecute=yes even for a command that looks like a JIT")
	fs.StringVar(&o.fromPM2, "from-pm2", "", "write the units of every app in this PM2 ecosystem `FILE` (.js, .json, .yaml) instead of NAME's")
	return fs, o
}

// listenStreamAddr checks an address as drover run's --listen would and
// writes it as ListenStream= takes it: a bare port for every address.
func listenStreamAddr(s string) (string, error) {
	if _, err := strconv.Atoi(s); err == nil {
		s = ":" + s
	}
	spec, err := sockets.ParseListen(s)
	if err != nil {
		return "", err
	}
	if spec.Network == "tcp" && strings.HasPrefix(spec.Address, ":") {
		return spec.Address[1:], nil
	}
	return spec.Address, nil
}

// unitNameRE is what systemd accepts as a unit name's prefix.
var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// initCommand is drover init with its flags in o; args are NAME and the
// worker command, dash the index of the first argument after "--" (-1 for
// none; normalizeArgs puts one before the command).
func initCommand(o *initOptions, args []string, dash int, stdout, stderr io.Writer) int {
	if o.fromPM2 != "" {
		name, rest := "", args
		if len(args) > 0 && dash != 0 {
			name, rest = args[0], args[1:]
		}
		return initFromPM2(name, rest, o, stdout, stderr)
	}
	if len(args) == 0 || dash == 0 {
		fmt.Fprintln(stderr, "drover init: want NAME first: drover init myapp --listen 8080 -- /usr/bin/myapp")
		return exitUsage
	}
	name, command := args[0], args[1:]
	if !unitNameRE.MatchString(name) || strings.HasSuffix(name, ".service") || strings.HasSuffix(name, ".socket") {
		fmt.Fprintf(stderr, "drover init: %q is not a unit name (letters, digits, :_.-; no .service suffix)\n", name)
		return exitUsage
	}
	if len(o.listen) == 0 {
		fmt.Fprintln(stderr, "drover init: want at least one --listen")
		return exitUsage
	}
	if len(command) == 0 {
		fmt.Fprintln(stderr, "drover init: no command: drover init NAME --listen ADDR -- COMMAND [ARGS...]")
		return exitUsage
	}
	if err := o.resolveCommand(command); err != nil {
		fmt.Fprintf(stderr, "drover init: %v\n", err)
		return exitUsage
	}
	drover, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "drover init: find drover's own path: %v\n", err)
		return 1
	}
	if o.metrics != "" && o.fdName == metricsFDName {
		fmt.Fprintf(stderr, "drover init: --listen %s=...: the name %q is drover's, for --metrics\n", metricsFDName, metricsFDName)
		return exitUsage
	}
	sockets := name + ".socket"
	if o.metrics != "" {
		sockets += " " + name + "-metrics.socket"
	}
	return emitUnits(renderUnits(name, drover, command, o), sockets, o, stdout, stderr)
}

// resolveCommand makes command[0] an absolute path, as ExecStart= wants
// it, and decides from it drover run --node and MemoryDenyWriteExecute=.
func (o *initOptions) resolveCommand(command []string) error {
	path, err := exec.LookPath(command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return fmt.Errorf("command %q: %w", command[0], errors.Unwrap(err))
	}
	command[0] = path
	p := inspectProgram(path)
	if p.node {
		o.runFlags = append(o.runFlags, "--node")
		o.netlink = true
	}
	o.jitComment, err = jitComment(p, o)
	return err
}

// emitUnits prints the units, or with --install writes them (none unless
// all can be) and reloads systemd's configuration; enable is what to
// enable to start serving.
func emitUnits(files []unitFile, enable string, o *initOptions, stdout, stderr io.Writer) int {
	if !o.install {
		for i, f := range files {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "# %s\n%s", f.name, f.content)
		}
		return 0
	}
	if !o.force {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(o.unitDir, f.name)); err == nil {
				fmt.Fprintf(stderr, "drover init: %s exists; --force overwrites it\n", filepath.Join(o.unitDir, f.name))
				return 1
			}
		}
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(o.unitDir, f.name), f.content); err != nil {
			fmt.Fprintf(stderr, "drover init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(o.unitDir, f.name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := connectSystemd(ctx)
	if err == nil {
		err = bus.daemonReload(ctx)
		bus.close()
	}
	if err != nil {
		fmt.Fprintf(stderr, "drover init: %v (run systemctl daemon-reload yourself)\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "systemd reloaded its configuration; start serving with: systemctl enable --now %s\n", enable)
	return 0
}

// unitFile is one unit drover init writes.
type unitFile struct{ name, content string }

// metricsFDName is the FileDescriptorName= of NAME-metrics.socket.
const metricsFDName = "metrics"

// renderUnits makes NAME's units from the shipped templates.
func renderUnits(name, drover string, command []string, o *initOptions) []unitFile {
	// NAME replaces the placeholder in the templates' own lines only: the
	// user's addresses, socket name, command and user are taken verbatim,
	// whatever they contain (/usr/bin/myapp stays /usr/bin/myapp).
	var lines []string
	for _, l := range strings.Split(units.Socket, "\n") {
		l = strings.ReplaceAll(l, units.Name, name)
		switch {
		case strings.HasPrefix(l, "ListenStream="):
			for _, addr := range o.listen {
				lines = append(lines, "ListenStream="+addr)
			}
		case strings.HasPrefix(l, "FileDescriptorName=") && o.fdName != "":
			lines = append(lines, "FileDescriptorName="+o.fdName)
		default:
			lines = append(lines, l)
		}
	}
	socket := strings.Join(lines, "\n")

	lines = nil
	for _, l := range strings.Split(units.Service, "\n") {
		l = strings.ReplaceAll(l, units.Name, name)
		switch {
		case strings.HasPrefix(l, "ExecStart="):
			flags := ""
			if o.metrics != "" {
				flags = " --metrics-socket " + metricsFDName
			}
			if len(o.runFlags) > 0 {
				flags += " " + quoteAll(o.runFlags)
			}
			lines = append(lines, "ExecStart="+systemdQuote(drover)+" run"+flags+" -- "+quoteAll(command))
			lines = append(lines, serviceEnv(o)...)
			continue
		case strings.HasPrefix(l, "MemoryDenyWriteExecute=") && o.jitComment != "":
			for len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], "#") {
				lines = lines[:len(lines)-1] // the template's advice to remove it
			}
			lines = append(lines, o.jitComment)
			continue
		case strings.HasPrefix(l, "RestrictAddressFamilies=") && o.netlink:
			if n := len(lines); n > 0 && strings.HasPrefix(lines[n-1], "# Add AF_NETLINK") {
				lines = lines[:n-1] // the template's advice to add it
			}
			lines = append(lines, "# AF_NETLINK: Node's os.networkInterfaces(), with which servers print", "# their addresses, fails without it.")
			l += " AF_NETLINK"
		case o.metrics != "" && (l == "Requires="+name+".socket" || l == "After="+name+".socket"):
			l += " " + name + "-metrics.socket"
		case o.metrics != "" && l == "[Service]":
			lines = append(lines, l,
				"# Keep: the app's sockets, then drover's own for Prometheus (drover keeps",
				"# the one named "+metricsFDName+" from the workers).",
				"Sockets="+name+".socket "+name+"-metrics.socket")
			continue
		case strings.HasPrefix(l, "ExecReload="):
			l = "ExecReload=" + systemdQuote(drover) + " reload"
		case l == "DynamicUser=yes" && o.user != "":
			l = "User=" + o.user
		}
		lines = append(lines, l)
	}
	files := []unitFile{{name + ".socket", socket}, {name + ".service", strings.Join(lines, "\n")}}
	if o.metrics != "" {
		files = append(files, unitFile{name + "-metrics.socket", metricsSocketUnit(name, o.metrics)})
	}
	return files
}

// serviceEnv is WorkingDirectory= and Environment= for the service, after
// ExecStart=.
func serviceEnv(o *initOptions) []string {
	if o.dir == "" && len(o.env) == 0 {
		return nil
	}
	lines := []string{"# From " + o.envSource + "."}
	if o.dir != "" {
		// Taken to the end of the line, unquoted; % is a specifier.
		lines = append(lines, "WorkingDirectory="+strings.ReplaceAll(o.dir, "%", "%%"))
	}
	for _, kv := range o.env {
		lines = append(lines, "Environment="+envQuote(kv))
	}
	return lines
}

// envQuote quotes one Environment= assignment: systemd unquotes it and
// reads C escapes and % specifiers, but expands no $ there.
func envQuote(kv string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, "\n", `\n`).Replace(kv) + `"`
}

// metricsSocketUnit is NAME-metrics.socket: drover's own socket for
// Prometheus, passed to the same service under its own name.
func metricsSocketUnit(name, addr string) string {
	return fmt.Sprintf(`# drover's Prometheus metrics for %[1]s.service: scrape http://%[2]s/metrics.
# The workers never see this socket: drover keeps the one named %[3]s.

[Unit]
Description=%[1]s metrics socket (drover's /metrics)

[Socket]
ListenStream=%[2]s
# Keep: the name drover run --metrics-socket looks for.
FileDescriptorName=%[3]s
# Keep: passed to the app's service, beside %[1]s.socket.
Service=%[1]s.service

[Install]
WantedBy=sockets.target
`, name, addr, metricsFDName)
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = systemdQuote(a)
	}
	return strings.Join(q, " ")
}

var plainArgRE = regexp.MustCompile(`^[A-Za-z0-9_./:=+,@-]+$`)

// systemdQuote quotes one ExecStart= word: systemd splits on spaces,
// understands C-style quotes and escapes, and expands % specifiers and $
// variables, so those are doubled.
func systemdQuote(s string) string {
	if plainArgRE.MatchString(s) {
		return s
	}
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`).Replace(s)
	return `"` + s + `"`
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".drover-new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
