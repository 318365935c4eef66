package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "print a shell completion script",
		Long: `Prints the script that makes bash, zsh or fish complete drover's commands
and flags, and UNIT with the names of the services drover runs (read from
systemd over D-Bus as you type). The packages install all three; to load one
by hand: source <(drover completion bash), or drover completion fish | source.`,
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish"},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("want one shell: bash, zsh or fish")
			}
			root, w := c.Root(), c.OutOrStdout()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(w, true)
			case "zsh":
				err = root.GenZshCompletion(w)
			case "fish":
				err = root.GenFishCompletion(w, true)
			default:
				return usageErrorf("no completion for %q: want bash, zsh or fish", args[0])
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("write the script: %w", err)}
			}
			return nil
		},
	}
}

// completionTimeout bounds the D-Bus round trips of one completion: the
// shell waits for them while the user waits for the shell.
const completionTimeout = 2 * time.Second

// completeUnit completes a command's UNIT (its first argument) with the
// services drover runs. No bus, no systemd or a slow one: no names, and no
// error either, since what completion prints lands in the user's command
// line.
func completeUnit(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(c.Context(), completionTimeout)
	defer cancel()
	bus, err := connectSystemd(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer bus.close()
	names, _ := bus.droverUnits(ctx, toComplete)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// execCommand is one entry of a service's ExecStart property, as systemd
// sends it: a(sasbttttuii).
type execCommand struct {
	Path                     string
	Argv                     []string
	IgnoreFailure            bool
	StartRealtime, StartMono uint64
	ExitRealtime, ExitMono   uint64
	Pid                      uint32
	Code, Status             int32
}

// droverUnits lists the loaded services whose names start with prefix and
// whose ExecStart= runs drover, by name without ".service". It reads what
// systemd runs rather than RuntimeDirectory= (what drover status goes by):
// many services that are not drover's have a RuntimeDirectory=.
func (b *systemdBus) droverUnits(ctx context.Context, prefix string) ([]string, error) {
	units, err := b.conn.ListUnitsContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list units: %w", err)
	}
	self, _ := os.Executable()
	var names []string
	for _, u := range units {
		name, ok := strings.CutSuffix(u.Name, ".service")
		if !ok || u.LoadState != "loaded" || !strings.HasPrefix(name, prefix) {
			continue
		}
		prop, err := b.conn.GetServicePropertyContext(ctx, u.Name, "ExecStart")
		if err != nil {
			if ctx.Err() != nil {
				return names, ctx.Err()
			}
			continue
		}
		var cmds []execCommand
		if prop.Value.Store(&cmds) != nil {
			continue
		}
		if slices.ContainsFunc(cmds, func(e execCommand) bool { return runsDrover(e.Path, self) }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// runsDrover says whether an ExecStart= path is drover: this binary, or
// any binary called drover (a unit may name /usr/bin/drover while this one
// runs from elsewhere, or the other way round).
func runsDrover(path, self string) bool {
	return filepath.Base(path) == "drover" || (self != "" && path == self)
}
