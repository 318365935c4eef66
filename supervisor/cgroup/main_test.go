package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a drover stand-in (os/exec's
// helper-process pattern): started into a scratch cgroup, it calls Open on
// itself, as drover would under Delegate=yes.
const helperEnv = "DROVER_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "open" {
		os.Exit(helperOpen())
	}
	// Orphans of the process trees the tests start come to us, not to a
	// pid 1 that may never reap them, and are reaped by pid.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "become subreaper:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// helperOpen reports what Open did on stdout, then stays in its cgroup
// until the test closes its stdin.
func helperOpen() int {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	tree, err := Open(log)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Printf("dir %s controllers %s\n", tree.Dir(), strings.Join(tree.Controllers(), ","))
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	return 0
}
