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
		Use:   "init NAME --listen ADDR... [--user USER] [--install [--force]] -- COMMAND [ARGS...]",
		Short: "write NAME.socket and NAME.service for COMMAND",
		Long: `Writes the unit pair for running COMMAND under drover, made from the
commented, hardened myapp.socket and myapp.service drover ships: every
ListenStream= from --listen, ExecStart= running COMMAND through drover,
ExecReload= for drover reload. Prints them, or with --install writes them to
--unit-dir and asks systemd to reload its configuration over D-Bus; then
systemctl enable --now NAME.socket starts serving. Refuses to overwrite
existing units without --force.`,
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
	user    string
	install bool
	force   bool
	unitDir string
}

func initFlags() (*pflag.FlagSet, *initOptions) {
	o := &initOptions{}
	fs := pflag.NewFlagSet("drover init", pflag.ContinueOnError)
	fs.Func("listen", "`[NAME=]ADDR` for ListenStream=: 8080, 127.0.0.1:8080, [::1]:8080 or unix:/path (repeatable; NAME becomes FileDescriptorName=)", func(s string) error {
		addr := s
		if name, rest, ok := strings.Cut(s, "="); ok && !strings.Contains(name, ":") {
			addr = rest
		}
		if _, err := strconv.Atoi(addr); err == nil {
			s = strings.TrimSuffix(s, addr) + ":" + addr // a bare port
		}
		spec, err := sockets.ParseListen(s)
		if err != nil {
			return err
		}
		name, _, hasName := strings.Cut(s, "=")
		if hasName && !strings.Contains(name, ":") {
			if o.fdName != "" && o.fdName != spec.Name {
				return fmt.Errorf("--listen %q: one socket unit has one FileDescriptorName (already %q)", s, o.fdName)
			}
			o.fdName = spec.Name
		}
		addr = spec.Address
		if spec.Network == "tcp" && strings.HasPrefix(addr, ":") {
			addr = addr[1:] // every address: systemd takes the bare port
		}
		o.listen = append(o.listen, addr)
		return nil
	})
	fs.StringVar(&o.user, "user", "", "run as this existing user instead of a fresh DynamicUser=")
	fs.BoolVar(&o.install, "install", false, "write the units to --unit-dir and reload systemd's configuration")
	fs.BoolVar(&o.force, "force", false, "with --install, overwrite existing units")
	fs.StringVar(&o.unitDir, "unit-dir", "/etc/systemd/system", "where --install writes the units")
	return fs, o
}

// unitNameRE is what systemd accepts as a unit name's prefix.
var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// initCommand is drover init with its flags in o; args are NAME and the
// worker command, dash the index of the first argument after "--" (-1 for
// none; normalizeArgs puts one before the command).
func initCommand(o *initOptions, args []string, dash int, stdout, stderr io.Writer) int {
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
	path, err := exec.LookPath(command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "drover init: command %q: %v\n", command[0], errors.Unwrap(err))
		return exitUsage
	}
	command[0] = path
	drover, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "drover init: find drover's own path: %v\n", err)
		return 1
	}
	socket, service := renderUnits(name, drover, command, o)
	if !o.install {
		fmt.Fprintf(stdout, "# %s.socket\n%s\n# %s.service\n%s", name, socket, name, service)
		return 0
	}
	files := []struct{ name, content string }{{name + ".socket", socket}, {name + ".service", service}}
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
	fmt.Fprintf(stdout, "systemd reloaded its configuration; start serving with: systemctl enable --now %s.socket\n", name)
	return 0
}

// renderUnits makes NAME's units from the shipped templates.
func renderUnits(name, drover string, command []string, o *initOptions) (socket, service string) {
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
	socket = strings.Join(lines, "\n")

	lines = lines[:0]
	for _, l := range strings.Split(units.Service, "\n") {
		l = strings.ReplaceAll(l, units.Name, name)
		switch {
		case strings.HasPrefix(l, "ExecStart="):
			l = "ExecStart=" + systemdQuote(drover) + " run -- " + quoteAll(command)
		case strings.HasPrefix(l, "ExecReload="):
			l = "ExecReload=" + systemdQuote(drover) + " reload"
		case l == "DynamicUser=yes" && o.user != "":
			l = "User=" + o.user
		}
		lines = append(lines, l)
	}
	return socket, strings.Join(lines, "\n")
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
