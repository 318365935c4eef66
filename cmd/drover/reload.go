package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor/control"
)

func reloadCmd() *cobra.Command {
	fs, controlFlag, timeout := reloadFlags()
	c := &cobra.Command{
		Use:   "reload [--control PATH]",
		Short: "reload a running drover and wait for the result",
		Long: `Asks a running drover to reload: start workers of the program now on disk,
a batch at a time, each ready before an old worker drains. Waits until the
reload is done; exits 0 on success and 1, with the reason, when the new
version failed and the old one kept serving. Meant for ExecReload= in the
service, so that systemctl reload waits and fails visibly.`,
		// It takes no arguments: nothing to complete, not even files.
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, args []string) error {
			return exitWith(reloadCommand(*controlFlag, *timeout, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().AddFlagSet(fs)
	return c
}

func reloadFlags() (*pflag.FlagSet, *string, *time.Duration) {
	fs := pflag.NewFlagSet("drover reload", pflag.ContinueOnError)
	controlFlag := fs.String("control", "", "drover's control socket (default $RUNTIME_DIRECTORY/control.sock)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up when the reload has not finished by then (drover goes on with it)")
	return fs, controlFlag, timeout
}

func reloadCommand(controlFlag string, timeout time.Duration, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "drover reload: unexpected argument %q\n", args[0])
		return exitUsage
	}
	path := controlPath(controlFlag)
	if path == "" {
		fmt.Fprintln(stderr, "drover reload: no control socket: give --control PATH, or run it as ExecReload= of a unit with RuntimeDirectory=")
		return exitUsage
	}
	resp, err := control.Call(path, control.Request{Command: "reload"}, timeout)
	if err != nil {
		fmt.Fprintf(stderr, "drover reload: %v\n", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "drover reload: %s\n", resp.Error)
		return 1
	}
	fmt.Fprintln(stdout, "reloaded")
	return 0
}
