package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

func manCmd() command {
	return command{
		name:    "man",
		summary: "print the drover(1) manual page (roff)",
		doc:     "Prints the drover(1) manual page in roff, made from the same text as drover help.\nPackages install it: drover man | gzip -9n > drover.1.gz",
		run: func(args []string, stdout, stderr io.Writer) int {
			if len(args) > 0 {
				fmt.Fprintln(stderr, "drover man: takes no arguments")
				return exitUsage
			}
			writeMan(stdout)
			return 0
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

func writeMan(w io.Writer) {
	fmt.Fprintf(w, ".TH DROVER 1 \"\" \"drover %s\" \"User Commands\"\n", roff(version))
	fmt.Fprint(w, ".SH NAME\ndrover \\- one worker per CPU core on systemd's sockets, with restarts, zero-downtime reloads and journald logs\n")
	fmt.Fprint(w, ".SH SYNOPSIS\n")
	for _, c := range commands() {
		fmt.Fprintf(w, ".B drover %s\n", c.name)
		if c.synopsis != "" {
			fmt.Fprintf(w, "%s\n", roff(c.synopsis))
		}
		fmt.Fprint(w, ".br\n")
	}
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s", paragraphs(intro+`

systemd owns the listening sockets (a .socket unit) and starts drover by
socket activation. drover starts one worker per usable core and hands every
worker the same sockets exactly as systemd would hand them to one process, so
any unmodified socket-activated program can be a worker. It tells systemd
through sd_notify when it is ready (READY=1 once every worker is), how it is
doing (STATUS=), that it is alive (WATCHDOG=1) and when it reloads.`))
	fmt.Fprint(w, ".SH COMMANDS\n")
	for _, c := range commands() {
		fmt.Fprintf(w, ".SS \"drover %s %s\"\n%s", c.name, roff(c.synopsis), paragraphs(c.doc))
		if c.flags == nil {
			continue
		}
		c.flags().VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, ".TP\n\\fB\\-\\-%s\\fR", strings.ReplaceAll(f.Name, "-", `\-`))
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
