package pm2

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// mapApp maps an app whose directory holds server.js, with name web and
// env PORT 3000 unless opts says otherwise.
func mapApp(t *testing.T, opts map[string]any) (Plan, []Unmapped, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "server.js", "")
	writeFile(t, dir, "app.py", "")
	// Scripts without an extension, as npm packages' bins are.
	writeFile(t, dir, "bin/cli", "#!/usr/bin/env node\nrequire('../lib')\n")
	writeFile(t, dir, "bin/tool", "#!/bin/sh\nexec true\n")
	writeFile(t, dir, "bin/plain", "require('../lib')\n")
	writeFile(t, dir, "bin/server", "\x7fELF\x02\x01\x01\x00\x00")
	full := map[string]any{"name": "web", "script": "server.js", "env": map[string]any{"PORT": 3000.0}}
	for k, v := range opts {
		if v == nil {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	return Map(App{Options: full, Dir: dir})
}

func hasNote(unmapped []Unmapped, option string) bool {
	return slices.ContainsFunc(unmapped, func(u Unmapped) bool { return u.Option == option })
}

// Each option drover run has a flag for becomes that flag.
func TestMapFlags(t *testing.T) {
	cores := max(runtime.NumCPU()-1, 1)
	for _, c := range []struct {
		opts map[string]any
		want string // in the flags
		note string // option listed as mapped differently, if any
	}{
		{nil, "--stop-signal INT", ""}, // PM2's kill signal
		{map[string]any{"instances": "max"}, "--workers auto", ""},
		{map[string]any{"instances": 0.0}, "--workers auto", ""},
		{map[string]any{"instances": 4.0}, "--workers 4", ""},
		{map[string]any{"instances": "4"}, "--workers 4", ""},
		{map[string]any{"instances": 2}, "--workers 2", ""}, // YAML's int
		{map[string]any{"instances": -1.0}, fmt.Sprintf("--workers %d", cores), "instances"},
		{map[string]any{"exec_mode": "fork"}, "--workers 1", "exec_mode"},
		{map[string]any{"exec_mode": "fork_mode", "instances": 3.0}, "--workers 3", "exec_mode"},
		{map[string]any{"exec_mode": "cluster", "instances": 3.0}, "--workers 3", ""},
		{map[string]any{"kill_timeout": 1600.0}, "--stop-timeout 1.6s", ""},
		{map[string]any{"kill_signal": "SIGTERM"}, "--stop-signal TERM", ""},
		{map[string]any{"listen_timeout": 8000.0}, "--ready-timeout 8s", ""},
		{map[string]any{"wait_ready": true}, "--ready notify", ""},
		{map[string]any{"max_memory_restart": "300M"}, "--max-memory 300M", ""},
		{map[string]any{"max_memory_restart": "1g"}, "--max-memory 1G", ""},
		{map[string]any{"max_memory_restart": 314572800.0}, "--max-memory 314572800", ""},
		{map[string]any{"min_uptime": 5000.0}, "--min-uptime 5s", ""},
		{map[string]any{"min_uptime": "1m"}, "--min-uptime 1m0s", ""},
		{map[string]any{"max_restarts": 10.0}, "--max-failures 10", ""},
		{map[string]any{"restart_delay": 3000.0}, "--backoff-min 3s --backoff-max 3s", "restart_delay"},
		{map[string]any{"exp_backoff_restart_delay": 100.0}, "--backoff-min 100ms --backoff-max 15s", ""},
		{map[string]any{"exp_backoff_restart_delay": 20000.0, "restart_delay": 1.0}, "--backoff-min 20s --backoff-max 20s", "restart_delay"},
		{map[string]any{"autorestart": false}, "--stop-signal INT", "autorestart"},
	} {
		t.Run(fmt.Sprint(c.opts), func(t *testing.T) {
			plan, unmapped, err := mapApp(t, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if flags := strings.Join(plan.RunFlags, " "); !strings.Contains(flags, c.want) {
				t.Errorf("flags %q, want %q in them", flags, c.want)
			}
			if c.note != "" && !hasNote(unmapped, c.note) {
				t.Errorf("unmapped %v, want %s listed", unmapped, c.note)
			}
			if c.note == "" && len(unmapped) > 0 {
				t.Errorf("unmapped %v, want none", unmapped)
			}
		})
	}
	plan, _, _ := mapApp(t, map[string]any{"wait_ready": false, "autorestart": true})
	if flags := strings.Join(plan.RunFlags, " "); flags != "--stop-signal INT" {
		t.Errorf("wait_ready false, autorestart true: flags %q, want only --stop-signal INT", flags)
	}
}

// The command is interpreter, its args, the script against cwd, then
// the app's args; cwd is against the file's directory.
func TestMapCommand(t *testing.T) {
	plan, unmapped, err := mapApp(t, map[string]any{
		"node_args": "--max-old-space-size=512 --enable-source-maps",
		"args":      []any{"--title", "a b"},
		"env":       map[string]any{"PORT": "3000", "NODE_ENV": "production", "DEBUG": false},
		"uid":       "www-data",
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := plan.Dir
	want := []string{"node", "--max-old-space-size=512", "--enable-source-maps", filepath.Join(dir, "server.js"), "--title", "a b"}
	if !slices.Equal(plan.Command, want) || plan.Dir != dir {
		t.Errorf("command %q in %s, want %q", plan.Command, plan.Dir, want)
	}
	if want := []string{"DEBUG=false", "NODE_ENV=production", "PORT=3000"}; !slices.Equal(plan.Env, want) {
		t.Errorf("env %q, want %q", plan.Env, want)
	}
	if plan.Port != 3000 || plan.Name != "web" || plan.User != "www-data" || len(unmapped) != 0 {
		t.Errorf("port %d, name %q, user %q, unmapped %v", plan.Port, plan.Name, plan.User, unmapped)
	}

	for _, c := range []struct {
		opts map[string]any
		want string // the command, with the app's directory as DIR
	}{
		{map[string]any{"script": "app.py"}, "python3 DIR/app.py"},
		{map[string]any{"script": "app.py", "interpreter": "/opt/py/bin/python"}, "/opt/py/bin/python DIR/app.py"},
		{map[string]any{"script": "server.js", "exec_interpreter": "/usr/local/bin/node20"}, "/usr/local/bin/node20 DIR/server.js"},
		{map[string]any{"script": "npm", "args": "start -- --port 3000"}, "npm start -- --port 3000"},
		{map[string]any{"script": "./bin/www", "interpreter": "none", "cwd": "sub"}, "DIR/sub/bin/www"},
		{map[string]any{"script": "/usr/bin/gunicorn", "args": "-w 1 'app:create()'"}, "/usr/bin/gunicorn -w 1 app:create()"},
		// As PM2, with node: a node script (its bin, #!/usr/bin/env node)
		// and a text file with no #! line; a script for another
		// interpreter and a binary run themselves.
		{map[string]any{"script": "bin/cli", "args": "-p 3000"}, "node DIR/bin/cli -p 3000"},
		{map[string]any{"script": "./bin/plain"}, "node DIR/bin/plain"},
		{map[string]any{"script": "bin/tool"}, "DIR/bin/tool"},
		{map[string]any{"script": "bin/server"}, "DIR/bin/server"},
	} {
		plan, _, err := mapApp(t, c.opts)
		if err != nil {
			t.Errorf("%v: %v", c.opts, err)
			continue
		}
		got := strings.Join(plan.Command, " ")
		base := filepath.Dir(filepath.Join(plan.Dir, "x"))
		if c.opts["cwd"] != nil {
			base = filepath.Dir(base)
		}
		if want := strings.ReplaceAll(c.want, "DIR", base); got != want {
			t.Errorf("%v: command %q, want %q", c.opts, got, want)
		}
	}
}

// The port comes from env PORT or the args; the name, without one, from
// the script; cron_restart becomes OnCalendar=.
func TestMapPortNameCron(t *testing.T) {
	for _, c := range []struct {
		opts map[string]any
		port int
		name string
		note string
	}{
		{map[string]any{"env": nil, "args": "--port 4000"}, 4000, "web", ""},
		{map[string]any{"env": nil, "args": "--port 4000", "script": "app.py"}, 4000, "web", "args"},
		{map[string]any{"env": nil, "args": "--port=4001", "interpreter": "/usr/bin/node"}, 4001, "web", ""},
		{map[string]any{"env": nil, "args": []any{"-p", "4002"}}, 4002, "web", ""},
		{map[string]any{"env": map[string]any{"PORT": 80}, "args": "--port 80"}, 80, "web", ""},
		{map[string]any{"name": nil}, 3000, "server", ""},
		{map[string]any{"name": "My App/v2"}, 3000, "My-App-v2", ""},
		{map[string]any{"script": "app.py"}, 3000, "web", "env.PORT"}, // not node: must serve fd 3
	} {
		plan, unmapped, err := mapApp(t, c.opts)
		if err != nil {
			t.Errorf("%v: %v", c.opts, err)
			continue
		}
		if plan.Port != c.port || plan.Name != c.name {
			t.Errorf("%v: port %d name %q, want %d %q", c.opts, plan.Port, plan.Name, c.port, c.name)
		}
		if c.note != "" && !hasNote(unmapped, c.note) {
			t.Errorf("%v: unmapped %v, want %s listed", c.opts, unmapped, c.note)
		}
	}
	plan, _, err := mapApp(t, map[string]any{"cron_restart": "0 3 * * *"})
	if err != nil || plan.Calendar != "*-*-* 03:00:00" || plan.Cron != "0 3 * * *" {
		t.Errorf("cron_restart: calendar %q cron %q, %v", plan.Calendar, plan.Cron, err)
	}
}

// Every option without an equivalent is listed with its advice; none is
// dropped, not even one drover does not know.
func TestMapUnmapped(t *testing.T) {
	opts := map[string]any{"frobnicate": true, "env_production": map[string]any{"A": "1"}, "cwd": "/home/me/app", "script": "npm"}
	for key := range advice {
		opts[key] = true
	}
	_, unmapped, err := mapApp(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range unmapped {
		got[u.Option] = u.Advice
	}
	for key, a := range advice {
		if got[key] != strings.ReplaceAll(a, "NAME", "web") {
			t.Errorf("%s: advice %q, want %q", key, got[key], a)
		}
	}
	for key, want := range map[string]string{
		"frobnicate":     "not an option drover init knows",
		"env_production": "pm2 start --env production selects it",
		"cwd":            "hidden from the service by ProtectHome=yes",
	} {
		if !strings.Contains(got[key], want) {
			t.Errorf("%s: advice %q, want %q in it", key, got[key], want)
		}
	}
	if !slices.IsSortedFunc(unmapped, func(a, b Unmapped) int { return strings.Compare(a.Option, b.Option) }) {
		t.Error("unmapped options are not sorted")
	}
}

// An app drover init cannot write is one clear error naming the app.
func TestMapErrors(t *testing.T) {
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"script": nil}, "no script"},
		{map[string]any{"script": " "}, "no script"},
		{map[string]any{"script": "gone.js"}, "script "},
		{map[string]any{"script": "app.ts"}, "set interpreter"},
		{map[string]any{"env": map[string]any{"PORT": "abc"}}, `env PORT "abc": want a port number`},
		{map[string]any{"env": map[string]any{"PORT": 70000.0}}, "want a port number from 1 to 65535"},
		{map[string]any{"env": nil, "args": "--port x"}, `--port in args "x": want a port number`},
		{map[string]any{"env": nil}, "no port"},
		{map[string]any{"args": "--port 4000"}, "differ"},
		{map[string]any{"env": "PORT=3000"}, "env: want an object"},
		{map[string]any{"env": map[string]any{"PORT": 1.0, "A-B": "x"}}, `env "A-B": not a variable name`},
		{map[string]any{"env": map[string]any{"PORT": 1.0, "X": []any{}}}, "env.X: want a string"},
		{map[string]any{"args": "'unterminated"}, "unterminated"},
		{map[string]any{"instances": "lots"}, "instances: want max, -1 or a count"},
		{map[string]any{"instances": -2.0}, "instances -2"},
		{map[string]any{"exec_mode": "threads"}, `exec_mode "threads"`},
		{map[string]any{"kill_timeout": "soon"}, `kill_timeout "soon"`},
		{map[string]any{"kill_timeout": -5.0}, "kill_timeout -5"},
		{map[string]any{"kill_signal": "SIGBOGUS"}, "kill_signal"},
		{map[string]any{"max_restarts": 0.0}, "max_restarts 0"},
		{map[string]any{"max_memory_restart": "lots"}, `max_memory_restart "LOTS"`},
		{map[string]any{"wait_ready": "maybe"}, "wait_ready: want true or false"},
		{map[string]any{"cron_restart": "every day"}, "cron_restart: cron"},
		{map[string]any{"name": "///"}, "nothing left for a unit name"},
	} {
		_, _, err := mapApp(t, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", c.opts, err, c.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "app ") {
			t.Errorf("%v: %q does not name the app", c.opts, err)
		}
	}
}
