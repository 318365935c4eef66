package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverd/drover/testdata/testbin"
	"github.com/godbus/dbus/v5"
	"github.com/spf13/pflag"
)

// parsed is what cobra hands a command's RunE for a command line: the
// command, the flags that were set, the arguments and where "--" was.
type parsed struct {
	cmd   string
	flags map[string]string
	args  []string
	dash  int
}

// parse reads a command line as execute does (normalizeArgs, then cobra's
// Find and flag parsing) without running the command.
func parse(t *testing.T, args ...string) parsed {
	t.Helper()
	root := newRoot()
	c, rest, err := root.Find(normalizeArgs(root, args))
	if err == nil {
		err = c.ParseFlags(rest)
	}
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	p := parsed{cmd: c.Name(), flags: map[string]string{}, args: c.Flags().Args(), dash: c.ArgsLenAtDash()}
	c.Flags().Visit(func(f *pflag.Flag) { p.flags[f.Name] = f.Value.String() })
	return p
}

// Flags go before or after the arguments and mean the same, for every
// command; single-dash long flags (Go's flag package took them) still work;
// after "--", and from run's and init's worker command on, nothing is
// drover's.
func TestFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		lines [][]string // command lines that must parse alike
		want  parsed
	}{
		{[][]string{
			{"status", "--json", "myapp"}, {"status", "myapp", "--json"}, {"status", "-json", "myapp"}, {"status", "myapp", "--json=true"},
		}, parsed{cmd: "status", flags: map[string]string{"json": "true"}, args: []string{"myapp"}, dash: -1}},
		{[][]string{
			{"status", "--control", "/run/x.sock", "myapp"}, {"status", "myapp", "--control", "/run/x.sock"},
			{"status", "myapp", "-control=/run/x.sock"}, {"status", "-control", "/run/x.sock", "myapp"},
		}, parsed{cmd: "status", flags: map[string]string{"control": "/run/x.sock"}, args: []string{"myapp"}, dash: -1}},
		{[][]string{
			{"scale", "myapp", "+1", "--control", "/c"}, {"scale", "--control", "/c", "myapp", "+1"}, {"scale", "myapp", "--control=/c", "+1"},
		}, parsed{cmd: "scale", flags: map[string]string{"control": "/c"}, args: []string{"myapp", "+1"}, dash: -1}},
		{[][]string{
			{"scale", "myapp", "-3", "--control", "/c"}, {"scale", "--control", "/c", "myapp", "-3"}, {"scale", "myapp", "-3", "-control", "/c"},
		}, parsed{cmd: "scale", flags: map[string]string{"control": "/c"}, args: []string{"myapp", "-3"}, dash: 1}},
		{[][]string{
			{"logs", "myapp", "--worker", "1", "-f"}, {"logs", "--worker", "1", "myapp", "-f"}, {"logs", "-f", "--worker=1", "myapp"},
			{"logs", "-worker", "1", "myapp", "--f"}, {"logs", "myapp", "--follow", "-worker=1"},
		}, parsed{cmd: "logs", flags: map[string]string{"worker": "1", "follow": "true"}, args: []string{"myapp"}, dash: -1}},
		{[][]string{
			{"logs", "myapp", "-n", "5", "-f"}, {"logs", "-fn", "5", "myapp"}, {"logs", "-fn5", "myapp"}, {"logs", "--n", "5", "myapp", "--follow"},
			{"logs", "myapp", "--lines=5", "-f"},
		}, parsed{cmd: "logs", flags: map[string]string{"lines": "5", "follow": "true"}, args: []string{"myapp"}, dash: -1}},
		{[][]string{
			{"reload", "--control", "/c", "--timeout", "1m"}, {"reload", "-control", "/c", "-timeout=1m"}, {"reload", "--timeout", "1m0s", "--control=/c"},
		}, parsed{cmd: "reload", flags: map[string]string{"control": "/c", "timeout": "1m0s"}, args: []string{}, dash: -1}},
		// The worker's own flags, even drover's names, are the worker's.
		{[][]string{
			{"run", "--workers", "2", "--", "node", "app.js", "--port", "3", "--workers", "9", "-h"},
			{"run", "--workers", "2", "node", "app.js", "--port", "3", "--workers", "9", "-h"},
			{"run", "-workers", "2", "--", "node", "app.js", "--port", "3", "--workers", "9", "-h"},
			{"run", "-workers=2", "node", "app.js", "--port", "3", "--workers", "9", "-h"},
		}, parsed{cmd: "run", flags: map[string]string{"workers": "2"}, args: []string{"node", "app.js", "--port", "3", "--workers", "9", "-h"}, dash: 0}},
		// --listen's values go to the options (a func flag shows ""), so
		// these take a flag that shows its value too.
		{[][]string{
			{"run", "--listen", "127.0.0.1:0", "--stop-signal", "INT", "--", "cmd", "--", "-x"}, {"run", "--stop-signal", "INT", "--listen", "127.0.0.1:0", "cmd", "--", "-x"},
			{"run", "-listen", "127.0.0.1:0", "-stop-signal=INT", "cmd", "--", "-x"},
		}, parsed{cmd: "run", flags: map[string]string{"listen": "", "stop-signal": "INT"}, args: []string{"cmd", "--", "-x"}, dash: 0}},
		{[][]string{
			{"init", "web", "--listen", "8080", "--user", "www", "--install", "--", "/usr/bin/web", "--port", "3", "--install=false"},
			{"init", "--listen", "8080", "web", "--install", "--user=www", "--", "/usr/bin/web", "--port", "3", "--install=false"},
			{"init", "--install", "web", "--user", "www", "--listen", "8080", "/usr/bin/web", "--port", "3", "--install=false"},
			{"init", "-install", "-user", "www", "web", "-listen=8080", "/usr/bin/web", "--port", "3", "--install=false"},
		}, parsed{cmd: "init", flags: map[string]string{"listen": "", "user": "www", "install": "true"}, args: []string{"web", "/usr/bin/web", "--port", "3", "--install=false"}, dash: 1}},
		{[][]string{{"completion", "bash"}}, parsed{cmd: "completion", flags: map[string]string{}, args: []string{"bash"}, dash: -1}},
		{[][]string{{"man"}}, parsed{cmd: "man", flags: map[string]string{}, args: []string{}, dash: -1}},
	} {
		for _, line := range tc.lines {
			got := parse(t, line...)
			if got.flags == nil {
				got.flags = map[string]string{}
			}
			if got.cmd != tc.want.cmd || !maps.Equal(got.flags, tc.want.flags) || !slices.Equal(got.args, tc.want.args) || got.dash != tc.want.dash {
				t.Errorf("%q: got %+v, want %+v", line, got, tc.want)
			}
		}
	}
}

// run executes drover in this process and returns its output and exit code.
func runInProcess(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = execute(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// drover init without "--" takes COMMAND's flags as COMMAND's, as when
// drover's flags had to come first; with it, NAME may come after flags.
func TestInitCommandBoundary(t *testing.T) {
	var units []string
	for _, args := range [][]string{
		{"init", "web", "--listen", "8080", "--", "/bin/sh", "--listen", "9", "-h"},
		{"init", "web", "--listen", "8080", "/bin/sh", "--listen", "9", "-h"},
		{"init", "--listen", "8080", "web", "--", "/bin/sh", "--listen", "9", "-h"},
	} {
		out, errOut, code := runInProcess(args...)
		if code != 0 || !strings.Contains(out, " run -- /") || !strings.Contains(out, "sh --listen 9 -h\n") || !strings.Contains(out, "\nListenStream=8080\n") {
			t.Fatalf("drover %q: exit %d %s\n%s", args, code, errOut, out)
		}
		units = append(units, out)
	}
	if units[0] != units[1] || units[0] != units[2] {
		t.Errorf("the same units differ:\n%s\n---\n%s\n---\n%s", units[0], units[1], units[2])
	}
}

// drover run passes everything after "--" (or from COMMAND on) to the
// workers untouched, flags of drover's own names included.
func TestRunPassesWorkerFlags(t *testing.T) {
	for _, dashes := range [][]string{{"--"}, nil} {
		args := append([]string{"run", "--listen", "127.0.0.1:0", "--workers", "1", "--ready", "delay=1ms"}, dashes...)
		args = append(args, "/bin/sh", "-c", `echo "argv: $*" >&2; exec sleep 60`, "sh", "--workers", "9", "-h", "--", "-x")
		p := startProcess(t, bin.drover, args...)
		p.stderr.waitFor(t, "argv: --workers 9 -h -- -x")
		p.stderr.waitFor(t, "all 1 workers ready")
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help", "status"}, {"status", "--help"}, {"status", "-h"}, {"status", "myapp", "-h"}, {"status", "-help"}} {
		out, errOut, code := runInProcess(args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: drover status [--json] [--control PATH] [UNIT]\n") || !strings.Contains(out, "--json") || strings.Contains(out, "--help") || errOut != "" {
			t.Errorf("drover %q: exit %d, stderr %q\n%s", args, code, errOut, out)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out, _, code := runInProcess(args...)
		if code != 0 || !strings.Contains(out, "drover status [--json]") || !strings.Contains(out, "drover completion bash|zsh|fish") || strings.Contains(out, "__complete") {
			t.Errorf("drover %q: exit %d\n%s", args, code, out)
		}
	}
	if out, errOut, code := runInProcess(); code != exitUsage || out != "" || !strings.Contains(errOut, "Usage:") {
		t.Errorf("drover: exit %d, stdout %q, stderr %q; want the overview on stderr and exit 2", code, out, errOut)
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if out, _, code := runInProcess(args...); code != 0 || out != "drover "+version+"\n" {
			t.Errorf("drover %q: exit %d %q", args, code, out)
		}
	}
}

// Each shell's script is made, and is valid for the shell when it is
// installed.
func TestCompletionScripts(t *testing.T) {
	for _, tc := range []struct{ shell, want, check string }{
		{"bash", "__start_drover", "-n"},
		{"zsh", "#compdef drover", "-n"},
		{"fish", "complete -c drover", "--no-execute"},
	} {
		out, errOut, code := runInProcess("completion", tc.shell)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("drover completion %s: exit %d %s, no %q", tc.shell, code, errOut, tc.want)
			continue
		}
		sh, err := exec.LookPath(tc.shell)
		if err != nil {
			t.Logf("%s not installed: its script is not checked", tc.shell)
			continue
		}
		check := exec.Command(sh, tc.check)
		check.Stdin = strings.NewReader(out)
		if b, err := check.CombinedOutput(); err != nil {
			t.Errorf("%s %s on drover completion %s: %v\n%s", tc.shell, tc.check, tc.shell, err, b)
		}
	}
}

// completions runs drover __complete (what the scripts call) and returns
// the completions and the directive line.
func completions(t *testing.T, env []string, args ...string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(bin.drover, append([]string{"__complete"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drover __complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var names []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		names = append(names, name)
	}
	return names, lines[len(lines)-1]
}

// execStart is a service's ExecStart property as systemd's bus gives it.
func execStart(path string, args ...string) dbus.Variant {
	return dbus.MakeVariant([]execCommand{{Path: path, Argv: append([]string{path}, args...)}})
}

// UNIT completes with the services whose ExecStart= runs drover, read from
// systemd over D-Bus; without a bus, with nothing, at once.
func TestCompleteUnits(t *testing.T) {
	units := map[string]map[string]map[string]dbus.Variant{
		"myapp.service":  serviceUnit("active", 10, []string{"myapp"}),
		"web.service":    serviceUnit("inactive", 0, []string{"web"}),
		"nginx.service":  serviceUnit("active", 11, []string{"nginx"}),
		"noexec.service": serviceUnit("active", 12, nil),
		"myapp.socket":   {"org.freedesktop.systemd1.Unit": {"LoadState": dbus.MakeVariant("loaded")}},
		"mygone.service": {"org.freedesktop.systemd1.Unit": {"LoadState": dbus.MakeVariant("not-found")}},
	}
	units["myapp.service"]["org.freedesktop.systemd1.Service"]["ExecStart"] = execStart("/usr/bin/drover", "run", "--", "/usr/bin/myapp")
	units["web.service"]["org.freedesktop.systemd1.Service"]["ExecStart"] = execStart(bin.drover, "run", "--", "/usr/bin/web")
	units["nginx.service"]["org.freedesktop.systemd1.Service"]["ExecStart"] = execStart("/usr/sbin/nginx", "-g", "daemon off;")
	bus := startFakeSystemd(t, units)
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", ""}, []string{"myapp", "web"}},
		{[]string{"status", "--json", "m"}, []string{"myapp"}},
		{[]string{"logs", "--worker", "1", ""}, []string{"myapp", "web"}},
		{[]string{"scale", ""}, []string{"myapp", "web"}},
		{[]string{"scale", "myapp", ""}, nil},
		{[]string{"status", "myapp", ""}, nil},
	} {
		if got, directive := completions(t, env, tc.args...); !slices.Equal(got, tc.want) || directive != ":4" {
			t.Errorf("drover __complete %q: %q %s, want %q :4 (no file completion)", tc.args, got, directive, tc.want)
		}
	}

	cmds, _ := completions(t, env, "")
	for _, want := range []string{"run", "status", "scale", "logs", "init", "completion", "help"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("drover __complete \"\": %q lacks %s", cmds, want)
		}
	}
	if flags, _ := completions(t, env, "status", "myapp", "--"); !slices.Contains(flags, "--json") || !slices.Contains(flags, "--control") {
		t.Errorf("drover __complete status myapp --: %q, want --json and --control", flags)
	}

	start := time.Now()
	if got, directive := completions(t, []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + t.TempDir() + "/none"}, "status", ""); got != nil || directive != ":4" {
		t.Errorf("without a bus: %q %s, want nothing", got, directive)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("completion without a bus took %v", d)
	}
}

// The zsh and fish scripts complete a unit in the shells themselves: fish
// through complete -C, zsh at a real prompt in tmux (a Tab press), each
// with drover on PATH and systemd's bus the fake one.
func TestCompletionInShells(t *testing.T) {
	units := map[string]map[string]map[string]dbus.Variant{
		"myapp.service": serviceUnit("active", 10, []string{"myapp"}),
		"web.service":   serviceUnit("inactive", 0, []string{"web"}),
	}
	for _, name := range []string{"myapp.service", "web.service"} {
		units[name]["org.freedesktop.systemd1.Service"]["ExecStart"] = execStart("/usr/bin/drover", "run", "--", "/usr/bin/x")
	}
	bus := startFakeSystemd(t, units)
	env := []string{"PATH=" + filepath.Dir(bin.drover) + ":" + os.Getenv("PATH"), "DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr}

	t.Run("fish", func(t *testing.T) {
		fish := testbin.Tool(t, "fish")
		for line, want := range map[string][]string{
			"drover sta":        {"status"},
			"drover status ":    {"myapp", "web"},
			"drover status --j": {"--json"},
		} {
			cmd := exec.Command(fish, "--no-config", "-c", `drover completion fish | source; complete -C "$argv[1]"`, line)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("fish complete -C %q: %v", line, err)
			}
			var got []string
			for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
				name, _, _ := strings.Cut(l, "\t")
				got = append(got, name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("fish completes %q with %q, want %q", line, got, want)
			}
		}
	})

	t.Run("zsh", func(t *testing.T) {
		zsh := testbin.Tool(t, "zsh")
		tm := startTmux(t, 120, 20, append(append([]string{"env"}, env...), zsh, "-f")...)
		tm.run("send-keys", "autoload -U compinit && compinit -u && source <(drover completion zsh) && echo loaded", "Enter")
		tm.waitScreen("the script loaded", func(s string) bool { return strings.Contains(s, "\nloaded") })
		tm.run("send-keys", "drover sta", "Tab")
		// The pane's lines come without their trailing spaces.
		tm.waitScreen("drover sta completed to status", func(s string) bool {
			return regexp.MustCompile(`(?m)# drover status$`).MatchString(s)
		})
		tm.run("send-keys", "Tab")
		tm.waitScreen("both units listed", func(s string) bool {
			return regexp.MustCompile(`(?m)\bmyapp\b`).MatchString(s) && regexp.MustCompile(`(?m)\bweb\b`).MatchString(s)
		})
	})
}
