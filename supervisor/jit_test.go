package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// A worker killed by SIGTRAP before it was ever ready, under
// MemoryDenyWriteExecute=, fails with the reason and the fix; without it,
// or for another signal, the failure is only what happened.
func TestJITCrashUnderWriteExecuteDenied(t *testing.T) {
	for _, c := range []struct {
		name   string
		denied bool
		signal string
		hint   bool
	}{
		{"trap-denied", true, "TRAP", true},
		{"segv-denied", true, "SEGV", true},
		{"trap-allowed", false, "TRAP", false},
		{"term-denied", true, "TERM", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, _ := testConfig(t, 1, "report")
			cfg.Command = []string{"/bin/sh", "-c", "kill -" + c.signal + " $$"}
			logger, _ := logtest.NewNullLogger()
			cfg.Log = logger
			sup, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sup.writeExecuteDenied = c.denied
			err = sup.Run(context.Background())
			if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "killed by SIG"+c.signal) {
				t.Fatalf("Run = %v, want a failed start by SIG%s", err, c.signal)
			}
			if got := strings.Contains(err.Error(), "MemoryDenyWriteExecute=yes"); got != c.hint {
				t.Errorf("hint = %v, want %v: %v", got, c.hint, err)
			}
		})
	}
}

// drover itself is not under MemoryDenyWriteExecute= in the tests.
func TestWriteExecuteAllowedHere(t *testing.T) {
	if writeExecuteDenied() {
		t.Error("writeExecuteDenied() = true outside MemoryDenyWriteExecute=")
	}
}
