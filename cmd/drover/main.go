// Command drover runs one worker per CPU core over systemd's sockets. It
// parses flags and hands over to package supervisor; see `drover help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/droverd/drover/supervisor"
)

// version is set at build time from git describe.
var version = "dev"

func main() {
	// The trampoline must come first: it runs in every worker between fork
	// and exec, and must do nothing but set LISTEN_PID and exec.
	if len(os.Args) > 1 && os.Args[1] == supervisor.TrampolineArg {
		os.Exit(supervisor.ExecWorker(os.Args[2:]))
	}
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: bad command-line syntax is 2, as with most Unix tools; a
// configuration drover cannot run with (the worker command does not exist,
// systemd passed no usable socket) is EX_CONFIG, so a unit can refuse to
// restart on it (RestartPreventExitStatus=78) while it still restarts after
// a crash or a watchdog abort (SIGABRT also exits 2 in Go).
const (
	exitUsage  = 2
	exitConfig = 78
)

// command is one subcommand. Its help and the man page are made from the
// same fields, so they cannot disagree.
type command struct {
	name     string
	synopsis string // what follows "drover NAME"
	summary  string // one line, for the command list
	doc      string // paragraphs for help and drover(1)
	// flags returns the command's flag set, for help and the man page.
	flags func() *flag.FlagSet
	run   func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{runCmd(), reloadCmd(), statusCmd(), scaleCmd(), topCmd(), logsCmd(), initCmd(), versionCmd(), manCmd()}
}

const intro = `drover runs any socket-activated server as one worker per CPU core on
systemd's sockets, restarts workers that fail, reloads them without
dropping a connection and drains them on stop.`

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printOverview(stderr)
		return exitUsage
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(args) > 1 {
			if c, ok := lookup(args[1]); ok {
				printHelp(stdout, c)
				return 0
			}
			fmt.Fprintf(stderr, "drover: no help for %q (try drover help)\n", args[1])
			return exitUsage
		}
		printOverview(stdout)
		return 0
	}
	if name == "--version" {
		name = "version"
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "drover: unknown command %q (try drover help)\n", name)
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printOverview(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage:\n", intro)
	for _, c := range commands() {
		if c.summary == "" {
			continue // hidden
		}
		fmt.Fprintf(w, "  drover %-44s %s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.summary)
	}
	fmt.Fprintln(w, "\nRun 'drover help COMMAND' for its flags; 'man drover' for everything.")
}

func printHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "Usage: drover %s %s\n\n%s\n", c.name, c.synopsis, c.doc)
	if c.flags == nil {
		return
	}
	fs := c.flags()
	if hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses a command's flags. It prints help on -h and one line
// for any error; ok false means return code.
func parseFlags(c command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	// The flag package's own output (error, then all the usage) is replaced
	// by one line, as drover promises for bad input.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, c)
			return 0, false
		}
		fmt.Fprintf(stderr, "drover %s: %v (see drover help %s)\n", c.name, err, c.name)
		return exitUsage, false
	}
	return 0, true
}

func versionCmd() command {
	return command{
		name:    "version",
		summary: "print the version",
		doc:     "Prints drover's version (from git describe at build time).",
		run: func(args []string, stdout, stderr io.Writer) int {
			fmt.Fprintf(stdout, "drover %s\n", version)
			return 0
		},
	}
}
