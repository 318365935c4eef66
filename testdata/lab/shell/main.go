// Command shell boots one lab distro with the current build installed and
// opens a shell inside it; the container is torn down when the shell exits.
// `make lab-shell DISTRO=trixie` runs it through testdata/lab/shell.sh.
//
//	go run ./testdata/lab/shell [-c COMMAND] [DISTRO]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/droverd/drover/testdata/lab"
)

func main() {
	command := flag.String("c", "", "run this shell command inside instead of an interactive shell")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: lab-shell [-c COMMAND] [bookworm|trixie]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	name := "trixie"
	if flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	if flag.NArg() == 1 {
		name = flag.Arg(0)
	}
	log.SetFlags(0)
	log.SetPrefix("lab-shell: ")
	code, err := run(name, *command)
	if err != nil {
		log.Print(err)
	}
	os.Exit(code)
}

func run(name, command string) (int, error) {
	d, err := lab.DistroByName(name)
	if err != nil {
		return 2, err
	}
	lab.HandleInterrupts(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	ctx := context.Background()
	if err := lab.EnsureTools(ctx, log.Printf); err != nil {
		return 1, err
	}
	root, err := lab.RepoRoot()
	if err != nil {
		return 1, err
	}
	rootfs, err := lab.EnsureRootfs(ctx, d, log.Printf)
	if err != nil {
		return 1, err
	}
	tmp, err := os.MkdirTemp("", "drover-lab-shell-")
	if err != nil {
		return 1, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	defer lab.OnInterrupt(func() { os.RemoveAll(tmp) })()
	b, err := lab.BuildAll(ctx, root, tmp)
	if err != nil {
		return 1, err
	}
	m, err := lab.Boot(ctx, d, rootfs, b.Binds(), tmp, log.Printf)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := m.Shutdown(); err != nil {
			log.Print(err)
		}
	}()
	port, err := lab.FreePort()
	if err != nil {
		return 1, err
	}
	if err := m.WriteFile(ctx, lab.SocketDropInPath, []byte(lab.SocketDropIn(port))); err != nil {
		return 1, err
	}
	// The prompt says which distro this is (the rootfs says "vm").
	m.Output(ctx, "hostname", "lab-"+d.Name)
	if out, err := m.Output(ctx, "systemctl", "daemon-reload"); err != nil {
		return 1, fmt.Errorf("daemon-reload in %s: %w\n%s", d.Name, err, out)
	}
	fmt.Fprintf(os.Stderr, `
%s (systemd %d) is booted; the shipped units, /usr/bin/drover, /usr/bin/myapp
(example-worker %s) and %s are installed.
myapp.socket listens on 127.0.0.1:%d (%s). Try:
  systemctl start myapp.socket && curl -s http://127.0.0.1:%d/ && systemctl status myapp
Console log: %s. Leaving the shell powers the container off.

`, d.Name, d.Systemd, b.Version, lab.TestworkerPath, port, lab.SocketDropInPath, port, m.ConsoleLog)

	args := []string{"bash", "-l"}
	if command != "" {
		args = []string{"bash", "-c", command}
	} else {
		// ^C belongs to the shell inside from now on; SIGTERM and SIGHUP
		// (terminal gone) still tear down.
		signal.Ignore(syscall.SIGINT)
	}
	cmd := m.Command(context.Background(), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(cmd.Env, "TERM="+os.Getenv("TERM"))
	err = cmd.Run()
	if code, ok := lab.ErrExit(err); ok {
		return code, nil
	}
	if err != nil {
		return 1, fmt.Errorf("shell in %s: %w", d.Name, err)
	}
	return 0, nil
}
