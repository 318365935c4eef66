package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// drover run | head: once the reader is gone, drover's writes fail with
// EPIPE and are dropped; drover and its workers keep serving (a Go program
// is otherwise killed by SIGPIPE on a broken stdout).
func TestBrokenStdoutKillsNothing(t *testing.T) {
	addr := freePort(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader went away before drover wrote anything
	cmd := exec.Command(bin.drover, "run", "--listen", addr, "--workers", "1", "--", "/bin/sh", "-c",
		`echo first; (while :; do echo tick; sleep 0.01; done) & exec "$0"`, bin.example)
	cmd.Stdout = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := newLineLog(pipe)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { stderr.wait(); exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("drover stderr:\n%s", stderr.String())
		}
	})
	stderr.waitFor(t, "all 1 workers ready")
	for range 20 {
		ask(t, addr) // the ticks keep coming meanwhile
	}
	select {
	case err := <-exited:
		t.Fatalf("drover exited with a broken stdout: %v", err)
	default:
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("drover: %v, want a clean stop", err)
	}
	exited <- nil
}
