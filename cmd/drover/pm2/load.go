package pm2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// App is one entry of an ecosystem file's apps.
type App struct {
	// Options holds every key of the entry as decoded from JSON or YAML
	// (strings, float64 or int numbers, bools, maps, slices), so that Map
	// can tell which ones it did not use.
	Options map[string]any
	// Dir is the ecosystem file's directory: PM2 resolves a relative cwd
	// (and, without cwd, the script) against it.
	Dir string
	// Index is the entry's position in apps, for messages about an entry
	// without a name.
	Index int
}

// nodeTimeout bounds the evaluation of an ecosystem.config.js: it is the
// user's code, and one that waits on something must not hang drover init.
const nodeTimeout = 30 * time.Second

// printExports is run by node with the file's path as argv[1]: it prints
// module.exports as JSON. import() reads CommonJS and ES modules alike;
// an ES module's default export is what PM2 would read.
const printExports = `
const path = require('path');
const { pathToFileURL } = require('url');
import(pathToFileURL(path.resolve(process.argv[1])).href).then((m) => {
  const v = m.default !== undefined ? m.default : m;
  process.stdout.write(JSON.stringify(v === undefined ? null : v));
}, (e) => {
  process.stderr.write(String(e && e.message || e).split('\n')[0]);
  process.exit(1);
});
`

// Load reads the ecosystem file at path: ecosystem.config.js (.cjs,
// .mjs), evaluated with the node at nodePath, or .json, .yaml or .yml. It
// takes {apps: [...]} as well as a bare array of apps.
func Load(path, nodePath string) ([]App, error) {
	raw, err := readConfig(path, nodePath)
	if err != nil {
		return nil, err
	}
	list, err := appList(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	apps := make([]App, len(list))
	for i, entry := range list {
		opts, ok := entry.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: apps[%d]: want an object, got %s", path, i, describe(entry))
		}
		apps[i] = App{Options: opts, Dir: filepath.Dir(abs), Index: i}
	}
	return apps, nil
}

// readConfig decodes the file into plain Go values.
func readConfig(path, nodePath string) (any, error) {
	var v any
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".js", ".cjs", ".mjs":
		out, err := evalNode(path, nodePath)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(out, &v); err != nil {
			return nil, fmt.Errorf("%s: node printed no JSON: %w", path, err)
		}
	case ".json":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s: not JSON: %w", path, err)
		}
	case ".yaml", ".yml":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s: not YAML: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("%s: want an ecosystem file ending in .js, .cjs, .mjs, .json, .yaml or .yml", path)
	}
	return v, nil
}

// evalNode runs the ecosystem file's JavaScript, as PM2 does, and returns
// module.exports as JSON.
func evalNode(path, nodePath string) ([]byte, error) {
	if nodePath == "" {
		return nil, fmt.Errorf("%s: node not found: evaluating a JavaScript ecosystem file needs Node.js (or convert it to .json)", path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodePath, "-e", printExports, path)
	cmd.Dir = filepath.Dir(path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%s: node could not evaluate it: %s", path, msg)
	}
	return stdout.Bytes(), nil
}

// appList finds the apps in a decoded ecosystem file.
func appList(v any) ([]any, error) {
	switch v := v.(type) {
	case []any:
		return v, nil
	case map[string]any:
		apps, ok := v["apps"]
		if !ok {
			return nil, errors.New("no apps: want {apps: [...]} or an array of apps")
		}
		if list, ok := apps.([]any); ok {
			return list, nil
		}
		if one, ok := apps.(map[string]any); ok {
			return []any{one}, nil // PM2 takes a single app too
		}
		return nil, fmt.Errorf("apps: want an array, got %s", describe(apps))
	}
	return nil, fmt.Errorf("want {apps: [...]} or an array of apps, got %s", describe(v))
}

// describe names a decoded value's type for messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("%t", v)
	case float64, int, int64, uint64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
