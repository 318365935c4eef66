package pm2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/droverd/drover/cmd/drover/shebang"
)

// interpreters is PM2's guess of the interpreter from the script's
// extension (its lib/API/interpreter.json), for the ones drover init can
// name; a script with another extension runs with node if it is one for
// node (nodeScript), else itself.
var interpreters = map[string]string{
	".js": "node", ".cjs": "node", ".mjs": "node", ".es6": "node", ".jsx": "node",
	".sh": "bash", ".py": "python3", ".rb": "ruby", ".php": "php", ".pl": "perl",
}

// guessless are extensions PM2 gives a transpiler or runtime that drover
// init will not guess (ts-node, bun, coffee): the user names it.
var guessless = map[string]bool{".ts": true, ".tsx": true, ".coffee": true, ".ls": true}

// command makes the worker's argv: interpreter, its args, the script and
// the app's args, with the script resolved against cwd.
func (m *mapper) command() error {
	v, ok := m.get("script")
	script, _ := v.(string)
	if !ok || strings.TrimSpace(script) == "" {
		return errors.New("no script: every app needs one (the program or file PM2 would start)")
	}
	if err := m.dir(); err != nil {
		return err
	}
	interp, err := m.interpreter(script)
	if err != nil {
		return err
	}
	interpArgs, err := m.words("node_args", "interpreter_args")
	if err != nil {
		return err
	}
	if m.args, err = m.words("args"); err != nil {
		return err
	}
	if interp == "" {
		if len(interpArgs) > 0 {
			m.note("node_args", "ignored: the script runs itself (interpreter none); put interpreter flags in its shebang")
		}
		m.plan.Command = append([]string{m.executable(script)}, m.args...)
		return nil
	}
	path := m.resolve(script)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("script %s: %w", path, errors.Unwrap(err))
	}
	m.plan.Command = append(append(append([]string{interp}, interpArgs...), path), m.args...)
	return nil
}

// dir sets WorkingDirectory= from cwd, against the ecosystem file's
// directory as PM2 resolves it.
func (m *mapper) dir() error {
	m.plan.Dir = m.app.Dir
	if v, ok := m.get("cwd"); ok {
		s, err := stringValue("cwd", v)
		if err != nil {
			return err
		}
		m.plan.Dir = filepath.Join(m.app.Dir, s)
		if filepath.IsAbs(s) {
			m.plan.Dir = filepath.Clean(s)
		}
	}
	for _, hidden := range []string{"/home", "/root", "/run/user"} {
		if m.plan.Dir == hidden || strings.HasPrefix(m.plan.Dir, hidden+"/") {
			m.note("cwd", m.plan.Dir+" is hidden from the service by ProtectHome=yes: move the app (to /srv or /opt), or set ProtectHome=read-only in a drop-in")
		}
	}
	return nil
}

// resolve makes a path relative to cwd absolute.
func (m *mapper) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(m.plan.Dir, p)
}

// executable is the script run as a program: a path in cwd, or a name
// for PATH (npm, gunicorn), as PM2 looks it up.
func (m *mapper) executable(script string) string {
	if strings.Contains(script, "/") {
		return m.resolve(script)
	}
	if _, err := os.Stat(m.resolve(script)); err == nil {
		return m.resolve(script)
	}
	return script
}

// interpreter is the program that runs the script, "" when it runs itself.
func (m *mapper) interpreter(script string) (string, error) {
	v, ok := m.get("interpreter")
	if alias, aliasOK := m.get("exec_interpreter"); !ok && aliasOK {
		v, ok = alias, true
	}
	if ok {
		s, err := stringValue("interpreter", v)
		if err != nil {
			return "", err
		}
		if s == "none" || s == "" {
			return "", nil
		}
		return s, nil
	}
	ext := strings.ToLower(filepath.Ext(script))
	if guessless[ext] {
		return "", fmt.Errorf("script %s: set interpreter (PM2 guesses a transpiler for %s; drover init does not)", script, ext)
	}
	if interp, ok := interpreters[ext]; ok {
		return interp, nil
	}
	if strings.Contains(script, "/") && nodeScript(m.resolve(script)) {
		return "node", nil
	}
	return "", nil
}

// nodeScript tells a file PM2 runs with node although its name does not
// say so: a published CLI's bin (#!/usr/bin/env node, no extension). PM2
// runs every text file it has no extension rule for with node; drover
// init does so only where the #! line names node or there is none, and
// lets a script for another interpreter run itself, where PM2 would fail.
func nodeScript(path string) bool {
	interp, err := shebang.Interpreter(path)
	if err != nil {
		return false
	}
	if interp != "" {
		return isNode(interp)
	}
	return isText(path)
}

// isText: no NUL in the file's first 8000 bytes (PM2's test, and git's).
func isText(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 8000)
	n, _ := io.ReadFull(f, buf)
	return n > 0 && !bytes.Contains(buf[:n], []byte{0})
}

// words reads the first of keys that is set as a list of words.
func (m *mapper) words(keys ...string) ([]string, error) {
	for _, key := range keys {
		if v, ok := m.get(key); ok {
			return wordsValue(key, v)
		}
	}
	return nil, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// env takes env as Environment=; env_NAME variants (pm2 start --env NAME)
// are listed, since only one environment can be the unit's.
func (m *mapper) env() error {
	for key := range m.app.Options {
		if strings.HasPrefix(key, "env_") {
			m.used[key] = true
			m.note(key, "pm2 start --env "+strings.TrimPrefix(key, "env_")+" selects it: merge it into env and run drover init --from-pm2 again, or set its variables in a drop-in (systemctl edit "+m.plan.Name+": Environment=KEY=VALUE)")
		}
	}
	v, ok := m.get("env")
	if !ok {
		return nil
	}
	env, isMap := v.(map[string]any)
	if !isMap {
		return fmt.Errorf("env: want an object of variables, got %s", describe(v))
	}
	for key, value := range env {
		if !envNameRE.MatchString(key) {
			return fmt.Errorf("env %q: not a variable name (letters, digits, _)", key)
		}
		s, err := stringValue("env."+key, value)
		if err != nil {
			return err
		}
		m.plan.Env = append(m.plan.Env, key+"="+s)
	}
	sort.Strings(m.plan.Env)
	return nil
}
