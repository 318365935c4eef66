package pm2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverd/drover/testdata/testbin"
)

// writeFile writes name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every form of ecosystem file PM2 reads gives the same apps: CommonJS
// {apps: [...]} and a bare array, an ES module's default export, JSON and
// YAML.
func TestLoad(t *testing.T) {
	const want = "web:server.js api:api.js"
	for _, c := range []struct {
		file, content string
		node          bool
	}{
		{"ecosystem.config.js", `const port = 3000;
module.exports = {
  apps: [{ name: 'web', script: 'server.js', env: { PORT: port } },
         { name: 'api', script: 'api.js' }],
};`, true},
		{"array.config.js", `module.exports = [{ name: 'web', script: 'server.js' }, { name: 'api', script: 'api.js' }];`, true},
		{"ecosystem.config.mjs", `export default { apps: [{ name: 'web', script: 'server.js' }, { name: 'api', script: 'api.js' }] };`, true},
		{"ecosystem.config.cjs", `module.exports = { apps: [{ name: 'web', script: 'server.js' }, { name: 'api', script: 'api.js' }] };`, true},
		{"ecosystem.json", `{"apps": [{"name": "web", "script": "server.js"}, {"name": "api", "script": "api.js"}]}`, false},
		{"ecosystem.yaml", "apps:\n  - name: web\n    script: server.js\n  - name: api\n    script: api.js\n", false},
		{"ecosystem.yml", "- name: web\n  script: server.js\n- name: api\n  script: api.js\n", false},
	} {
		t.Run(c.file, func(t *testing.T) {
			node := ""
			if c.node {
				node = testbin.Tool(t, "node")
			}
			dir := t.TempDir()
			apps, err := Load(writeFile(t, dir, c.file, c.content), node)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range apps {
				got = append(got, a.Options["name"].(string)+":"+a.Options["script"].(string))
				if a.Dir != dir {
					t.Errorf("Dir %q, want the file's directory %q", a.Dir, dir)
				}
			}
			if strings.Join(got, " ") != want {
				t.Errorf("apps %v, want %s", got, want)
			}
		})
	}
}

// Bad input is one clear error naming the file and what is wrong.
func TestLoadErrors(t *testing.T) {
	node := testbin.Tool(t, "node")
	for _, c := range []struct {
		file, content, node, want string
	}{
		{"syntax.config.js", "module.exports = {apps: [", node, "node could not evaluate it: Unexpected end of input"},
		{"throws.config.js", "throw new Error('no config here')", node, "node could not evaluate it: no config here"},
		{"nonode.config.js", "module.exports = []", "", "node not found"},
		{"bad.json", `{"apps": [`, "", "not JSON"},
		{"bad.yaml", "apps: [", "", "not YAML"},
		{"noapps.json", `{"name": "web"}`, "", "no apps: want {apps: [...]}"},
		{"appsobject.json", `{"apps": "web"}`, "", `apps: want an array, got the string "web"`},
		{"entry.json", `{"apps": ["web"]}`, "", `apps[0]: want an object`},
		{"scalar.yaml", "42", "", "got the number 42"},
		{"ecosystem.toml", "", "", "want an ecosystem file ending in .js"},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), c.file, c.content)
			_, err := Load(path, c.node)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load: %v, want one line with %q", err, c.want)
			}
			if !strings.Contains(err.Error(), c.file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json"), ""); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}
