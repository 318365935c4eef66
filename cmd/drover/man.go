package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The man page is written here from the cobra commands rather than by
// cobra/doc: that makes a page per command through go-md2man (a markdown
// parser and renderer as dependencies), while drover(1) is one page with
// its own sections (ENVIRONMENT, EXIT STATUS, FILES) that lintian and groff
// check.

func manCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "man",
		Short: "print the drover(1) manual page (roff)",
		Long:  "Prints the drover(1) manual page in roff, made from the same text as drover help.\nPackages install it: drover man | gzip -9n > drover.1.gz",
		// It takes no arguments: nothing to complete, not even files.
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("takes no arguments")
			}
			writeMan(c.OutOrStdout(), c.Root())
			return nil
		},
	}
}

// roff escapes text for a man page: backslashes, and lines that would
// start with a control character.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// paragraphs turns blank-line-separated text into roff paragraphs.
func paragraphs(s string) string {
	var b strings.Builder
	for i, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roff(p) + "\n")
	}
	return b.String()
}

func writeMan(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, ".TH DROVER 1 \"\" \"drover %s\" \"User Commands\"\n", roff(version))
	fmt.Fprint(w, ".SH NAME\ndrover \\- one worker per CPU core on systemd's sockets, with restarts, zero-downtime reloads and journald logs\n")
	fmt.Fprint(w, ".SH SYNOPSIS\n")
	for _, c := range visibleCommands(root) {
		fmt.Fprintf(w, ".B drover %s\n", c.Name())
		if s := synopsis(c); s != "" {
			fmt.Fprintf(w, "%s\n", roff(s))
		}
		fmt.Fprint(w, ".br\n")
	}
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s", paragraphs(intro+`

systemd owns the listening sockets (a .socket unit) and starts drover by
socket activation. drover starts one worker per usable core and hands every
worker the same sockets exactly as systemd would hand them to one process, so
any unmodified socket-activated program can be a worker. It tells systemd
through sd_notify when it is ready (READY=1 once every worker is), how it is
doing (STATUS=), that it is alive (WATCHDOG=1) and when it reloads.

`+syntax))
	fmt.Fprint(w, ".SH COMMANDS\n")
	for _, c := range visibleCommands(root) {
		fmt.Fprintf(w, ".SS \"%s\"\n%s", strings.TrimSpace("drover "+c.Name()+" "+roff(synopsis(c))), paragraphs(c.Long))
		documentedFlags(c).VisitAll(func(f *pflag.Flag) {
			name, usage := pflag.UnquoteUsage(f)
			fmt.Fprint(w, ".TP\n")
			if f.Shorthand != "" {
				fmt.Fprintf(w, "\\fB\\-%s\\fR, ", f.Shorthand)
			}
			fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", strings.ReplaceAll(f.Name, "-", `\-`))
			if name != "" {
				fmt.Fprintf(w, " \\fI%s\\fR", roff(name))
			}
			fmt.Fprintf(w, "\n%s", roff(usage))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", roff(f.DefValue))
			}
			fmt.Fprint(w, "\n")
		})
	}
	fmt.Fprint(w, `.SH ENVIRONMENT
.TP
.B LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID
Sockets passed by systemd. Workers get their own copies, with LISTEN_PID set to each worker's pid.
.TP
.B NOTIFY_SOCKET, WATCHDOG_USEC
systemd's notification socket and watchdog interval; drover uses them and does not pass them on.
.TP
.B RUNTIME_DIRECTORY
Where drover puts its control socket (control.sock), for drover reload.
.TP
.B DROVER_WORKER_ID, DROVER_GENERATION
Set for each worker: its slot (0..N\-1) and the reload generation.
.SH EXIT STATUS
.TP
.B 0
Stopped on request after draining the workers.
.TP
.B 1
The start failed (a worker exited or was not ready in time), a worker slot was in a crash loop, or drover reload failed.
.TP
.B 2
Bad command-line syntax.
.TP
.B 78
A configuration drover cannot run with (no such worker command, no usable sockets); units use RestartPreventExitStatus=78.
.SH FILES
.TP
.I /usr/share/doc/drover/examples/
The myapp.socket and myapp.service unit pair to copy.
.SH SEE ALSO
.BR systemd.service (5),
.BR systemd.socket (5),
.BR sd_notify (3),
.BR sd_listen_fds (3),
.BR journalctl (1)
`)
}

// synopsis is what follows "drover NAME" in a command's Use.
func synopsis(c *cobra.Command) string {
	_, s, _ := strings.Cut(c.Use, " ")
	return s
}
