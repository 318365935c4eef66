// Command drover runs one worker per CPU core over systemd's sockets. It
// parses flags and hands over to package supervisor; see `drover help`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
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

// commands are drover's commands, in the order help and drover(1) list
// them. A new command is a func returning a *cobra.Command (Use, Short,
// Long and its flags are its help and its section of the man page), added
// here.
func commands() []*cobra.Command {
	return []*cobra.Command{runCmd(), reloadCmd(), statusCmd(), scaleCmd(), topCmd(), logsCmd(), initCmd(), upgradeCmd(), upgradeCheckCmd(), completionCmd(), versionCmd(), manCmd()}
}

const intro = `drover runs any socket-activated server as one worker per CPU core on
systemd's sockets, restarts workers that fail, reloads them without
dropping a connection and drains them on stop.`

// syntax is how drover reads a command line, for the overview and drover(1).
const syntax = `Flags go before or after a command's arguments; in run and init, everything
from COMMAND on (or after --) is the worker command's.`

func init() {
	// Commands are listed in the order of commands(), which puts the one
	// everybody needs (run) first, not in alphabetical order.
	cobra.EnableCommandSorting = false
}

// newRoot builds the command tree. Each call makes a fresh one (flag values
// live in it), so tests can run commands side by side.
func newRoot() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "drover",
		Short: "one worker per CPU core on systemd's sockets",
		Long:  intro,
		// Not cobra's legacy check, which prints suggestions over several
		// lines: an unknown command is one line, from RunE.
		Args: cobra.ArbitraryArgs,
		// drover prints its own one-line errors and picks the exit code
		// (execute); cobra's "Error:" and usage dump would bury them.
		SilenceErrors: true,
		SilenceUsage:  true,
		// drover completion (completionCmd) offers bash, zsh and fish with
		// drover's own help text; cobra's default adds powershell and a
		// subcommand per shell.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case showVersion:
				printVersion(c.OutOrStdout())
				return nil
			case len(args) == 0:
				printOverview(c.ErrOrStderr(), c)
				return exitWith(exitUsage)
			}
			return usageErrorf("unknown command %q (try drover help)", args[0])
		},
	}
	// Not cobra's Version field: its flag adds -v and its template says
	// "drover version X"; drover --version has always printed what drover
	// version prints.
	root.Flags().BoolVar(&showVersion, "version", false, "print the version")
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { printHelp(c.OutOrStdout(), c) })
	root.SetHelpCommand(helpCmd())
	root.AddCommand(commands()...)
	return root
}

// exitError ends a command with an exit code. err, if any, is printed as
// one line after the command's name; nil means the command already said
// what went wrong (or, for status' 3, that nothing did).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitWith turns a command body's exit code into RunE's error.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// execute runs drover with args (without the program name) and returns its
// exit code. Everything cobra itself rejects (unknown flags, flag values
// that do not parse) is bad syntax: exit 2 with one line, as before cobra.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(normalizeArgs(root, args))
	c, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if c == nil {
		c = root
	}
	var e *exitError
	if errors.As(err, &e) {
		if e.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", c.CommandPath(), e.err)
		}
		return e.code
	}
	if c == root {
		// cobra found no command, so a word here is not one: that is what
		// went wrong, more than a flag given with it (drover jump --json).
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				err = fmt.Errorf("unknown command %q", a)
				break
			}
		}
		fmt.Fprintf(stderr, "drover: %v (try drover help)\n", err)
	} else {
		fmt.Fprintf(stderr, "%s: %v (see drover help %s)\n", c.CommandPath(), err, c.Name())
	}
	return exitUsage
}

// helpCmd replaces cobra's help command, which prints the whole usage and
// exits 0 for a command it does not know.
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "show a command's usage and flags",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range visibleCommands(c.Root()) {
				if strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			if len(args) == 0 {
				printOverview(c.OutOrStdout(), root)
				return nil
			}
			target, rest, err := root.Find(args)
			if err != nil || target == root || len(rest) > 0 {
				return usageErrorf("no help for %q (try drover help)", strings.Join(args, " "))
			}
			printHelp(c.OutOrStdout(), target)
			return nil
		},
	}
}

// visibleCommands are the commands help and the man page list: not help
// itself, not cobra's hidden __complete.
func visibleCommands(root *cobra.Command) []*cobra.Command {
	var cs []*cobra.Command
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			cs = append(cs, c)
		}
	}
	return cs
}

func printOverview(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "%s\n\nUsage:\n", intro)
	for _, c := range visibleCommands(root) {
		fmt.Fprintf(w, "  drover %-44s %s\n", c.Use, c.Short)
	}
	fmt.Fprintf(w, "\n%s\nRun 'drover help COMMAND' for its flags; 'man drover' for everything.\n", syntax)
}

func printHelp(w io.Writer, c *cobra.Command) {
	if !c.HasParent() {
		printOverview(w, c)
		return
	}
	fmt.Fprintf(w, "Usage: drover %s\n\n%s\n", c.Use, c.Long)
	if fs := documentedFlags(c); fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}

// documentedFlags are a command's flags as help and drover(1) show them:
// without the -h, --help every command has.
func documentedFlags(c *cobra.Command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			fs.AddFlag(f)
		}
	})
	return fs
}

func printVersion(w io.Writer) { fmt.Fprintf(w, "drover %s\n", version) }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Long:  "Prints drover's version (from git describe at build time).",
		// It takes no arguments: nothing to complete, not even files.
		ValidArgsFunction: cobra.NoFileCompletions,
		Run:               func(c *cobra.Command, _ []string) { printVersion(c.OutOrStdout()) },
	}
}
