package pm2

import (
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Plan is what drover init writes for one app.
type Plan struct {
	// Name is the units' name: the app's name made a valid unit name.
	Name string
	// Command is the worker's argv. Command[0] is an absolute path, or a
	// bare name (node, python3) for drover init to find on PATH.
	Command []string
	// Dir is WorkingDirectory=: cwd, resolved against the ecosystem
	// file's directory.
	Dir string
	// Env is Environment=, one KEY=VALUE each, sorted by key.
	Env []string
	// RunFlags are drover run's flags, before "--".
	RunFlags []string
	// Port is the socket's ListenStream=, from env PORT or the args.
	Port int
	// Calendar is the reload timer's OnCalendar=, from cron_restart; ""
	// for no timer.
	Calendar string
	// Cron is cron_restart as the file gives it.
	Cron string
	// User is User= from the app's uid or user; "" for DynamicUser=.
	User string
}

// Unmapped is an option drover init cannot write as PM2 meant it, or
// writes differently; Advice says what to do instead.
type Unmapped struct {
	Option string
	Advice string
}

// mapper maps one app, noting which options it used.
type mapper struct {
	app      App
	used     map[string]bool
	args     []string // the app's own args, where the port may be
	plan     Plan
	unmapped []Unmapped
}

// Map makes an app's Plan. Options it reads but maps differently from PM2
// and those it cannot map come back in Unmapped, sorted by option; an
// error means the app cannot be written (no script, a port that is not a
// number, a value of the wrong type).
func Map(app App) (Plan, []Unmapped, error) {
	m := &mapper{app: app, used: map[string]bool{}}
	if err := m.run(); err != nil {
		return Plan{}, nil, fmt.Errorf("app %s: %w", m.label(), err)
	}
	m.rest()
	sort.SliceStable(m.unmapped, func(i, j int) bool { return m.unmapped[i].Option < m.unmapped[j].Option })
	return m.plan, m.unmapped, nil
}

func (m *mapper) run() error {
	for _, step := range []func() error{m.name, m.command, m.env, m.port, m.workers, m.stop, m.ready, m.restarts, m.memory, m.cron, m.user} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// get returns an option and marks it used.
func (m *mapper) get(key string) (any, bool) {
	v, ok := m.app.Options[key]
	if ok {
		m.used[key] = true
	}
	return v, ok && v != nil
}

func (m *mapper) note(option, advice string) {
	m.unmapped = append(m.unmapped, Unmapped{option, advice})
}

func (m *mapper) flag(name, value string) {
	m.plan.RunFlags = append(m.plan.RunFlags, "--"+name, value)
}

// label names the app in errors: its name, else its place in apps.
func (m *mapper) label() string {
	if name, ok := m.app.Options["name"].(string); ok && name != "" {
		return name
	}
	return fmt.Sprintf("apps[%d]", m.app.Index)
}

var unitUnsafe = regexp.MustCompile(`[^A-Za-z0-9:_.\\-]+`)

// name is the app's name, or as PM2 names it, the script's base name
// without its extension.
func (m *mapper) name() error {
	name := ""
	if v, ok := m.get("name"); ok {
		s, err := stringValue("name", v)
		if err != nil {
			return err
		}
		name = s
	}
	if name == "" {
		script, _ := m.app.Options["script"].(string)
		name = strings.TrimSuffix(filepath.Base(script), filepath.Ext(script))
	}
	name = strings.Trim(unitUnsafe.ReplaceAllString(name, "-"), "-.")
	if name == "" {
		return fmt.Errorf("name %q: nothing left for a unit name: use letters, digits, :_.-", m.app.Options["name"])
	}
	m.plan.Name = name
	return nil
}

// rest lists every option no step used as unmapped, with advice when
// drover knows a better way.
func (m *mapper) rest() {
	for key := range m.app.Options {
		if m.used[key] {
			continue
		}
		advice, ok := adviceFor(key)
		advice = strings.ReplaceAll(advice, "NAME", m.plan.Name)
		if !ok {
			advice = "not an option drover init knows: see PM2's documentation, and set its equivalent in a drop-in (systemctl edit " + m.plan.Name + ")"
		}
		m.note(key, advice)
	}
}

// port takes the socket's port from env PORT, else --port N, --port=N or
// -p N in the args.
func (m *mapper) port() error {
	var fromEnv, fromArgs string
	for _, kv := range m.plan.Env {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			fromEnv = v
		}
	}
	args := m.args
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--port="); ok {
			fromArgs = v
		} else if (a == "--port" || a == "-p") && i+1 < len(args) {
			fromArgs = args[i+1]
		}
	}
	text, source, option := fromEnv, "env PORT", "env.PORT"
	if text == "" {
		text, source, option = fromArgs, "--port in args", "args"
	}
	if text == "" {
		return fmt.Errorf("no port: set env PORT (or --port N in args): drover serves the app on a socket systemd listens on")
	}
	port, err := strconv.Atoi(text)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%s %q: want a port number from 1 to 65535", source, text)
	}
	if fromEnv != "" && fromArgs != "" && fromArgs != fromEnv {
		return fmt.Errorf("env PORT %s and --port %s in args differ: keep one", fromEnv, fromArgs)
	}
	m.plan.Port = port
	if !isNode(m.plan.Command[0]) {
		m.note(option, "systemd listens on "+text+" and drover passes the socket as fd 3 (LISTEN_FDS): the app must serve that socket rather than bind the port itself (drover run --node does it for Node)")
	}
	return nil
}

// isNode tells a node interpreter by name: node, nodejs, node20.
func isNode(path string) bool {
	base := strings.TrimRight(filepath.Base(path), "0123456789.-")
	return base == "node" || base == "nodejs"
}

// workers maps instances and exec_mode to --workers.
func (m *mapper) workers() error {
	mode := ""
	if v, ok := m.get("exec_mode"); ok {
		s, err := stringValue("exec_mode", v)
		if err != nil {
			return err
		}
		mode = strings.TrimSuffix(s, "_mode")
		if mode != "fork" && mode != "cluster" {
			return fmt.Errorf("exec_mode %q: want fork or cluster", s)
		}
	}
	v, ok := m.get("instances")
	if !ok {
		if mode == "fork" {
			m.flag("workers", "1")
			m.note("exec_mode", "fork runs one process in PM2: written as --workers 1; drover's workers share one socket, so --workers auto (one per core) works too")
		}
		return nil
	}
	if mode == "fork" {
		m.note("exec_mode", "fork: drover runs every instance on the one shared socket, as PM2's cluster mode does")
	}
	if s, isString := v.(string); isString && strings.EqualFold(strings.TrimSpace(s), "max") {
		m.flag("workers", "auto")
		return nil
	}
	n, err := intValue("instances", v)
	if err != nil {
		return fmt.Errorf("instances: want max, -1 or a count, got %s", describe(v))
	}
	switch {
	case n == 0:
		m.flag("workers", "auto")
	case n == -1:
		count := max(runtime.NumCPU()-1, 1)
		m.flag("workers", strconv.Itoa(count))
		m.note("instances", fmt.Sprintf("-1 (every CPU but one) written as --workers %d, for this machine's %d CPUs: change it for another machine, or use --workers auto", count, runtime.NumCPU()))
	case n > 0:
		m.flag("workers", strconv.FormatInt(n, 10))
	default:
		return fmt.Errorf("instances %d: want max, -1 or a count", n)
	}
	return nil
}
