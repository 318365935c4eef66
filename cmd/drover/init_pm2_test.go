package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/droverd/drover/testdata/testbin"
)

// ecosystem is a PM2 file as a Node shop writes one: a clustered web app
// with graceful reloads and a nightly restart, and an API on --port.
const ecosystem = `const common = { kill_timeout: 5000 };
module.exports = {
  apps: [
    {
      ...common,
      name: 'web',
      script: './server.js',
      instances: 'max',
      exec_mode: 'cluster',
      wait_ready: true,
      listen_timeout: 10000,
      max_memory_restart: '300M',
      cron_restart: '0 3 * * *',
      watch: true,
      ignore_watch: ['node_modules'],
      env: { NODE_ENV: 'production', PORT: 3000 },
      env_staging: { NODE_ENV: 'staging' },
    },
    {
      name: 'api',
      script: 'api/index.js',
      args: '--port 4000',
      node_args: '--max-old-space-size=512',
      instances: 2,
      max_restarts: 10,
      min_uptime: '10s',
      out_file: '/var/log/api.out.log',
      error_file: '/var/log/api.err.log',
    },
  ],
};
`

// pm2Dir is an app directory with the ecosystem file and the scripts.
func pm2Dir(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ecosystem.config.js": config,
		"server.js":           "require('http').createServer().listen(process.env.PORT)\n",
		"api/index.js":        "require('http').createServer().listen(4000)\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// splitUnits cuts drover init's output into its units, by the "# NAME"
// line before each.
func splitUnits(out string) map[string]string {
	units := map[string]string{}
	header := regexp.MustCompile(`(?m)^# ([A-Za-z0-9_.-]+\.(?:socket|service|timer))\n`)
	idx := header.FindAllStringSubmatchIndex(out, -1)
	for i, m := range idx {
		end := len(out)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		units[out[m[2]:m[3]]] = strings.TrimSuffix(out[m[1]:end], "\n")
	}
	return units
}

func TestInitFromPM2(t *testing.T) {
	node := testbin.Tool(t, "node")
	dir := pm2Dir(t, ecosystem)
	cmd := exec.Command(bin.drover, "init", "--from-pm2", filepath.Join(dir, "ecosystem.config.js"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drover init --from-pm2: %v\n%s", err, stderr.String())
	}
	units := splitUnits(string(out))
	var names []string
	for n := range units {
		names = append(names, n)
	}
	if len(units) != 6 {
		t.Fatalf("units %v, want web and api's socket and service, web-reload.timer and .service", names)
	}
	for unit, wants := range map[string][]string{
		"web.socket": {"\nListenStream=3000\n"},
		"api.socket": {"\nListenStream=4000\n"},
		"web.service": {
			"\nExecStart=" + bin.drover + " run --workers auto --stop-signal INT --stop-timeout 5s --ready notify --ready-timeout 10s --max-memory 300M --node -- " + node + " " + dir + "/server.js\n",
			"\nWorkingDirectory=" + dir + "\n",
			"\nEnvironment=\"NODE_ENV=production\"\nEnvironment=\"PORT=3000\"\n",
			"\n# No MemoryDenyWriteExecute=: node's JIT",
			"\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n",
		},
		"api.service": {
			"\nExecStart=" + bin.drover + " run --workers 2 --stop-signal INT --min-uptime 10s --max-failures 10 --node -- " + node + " --max-old-space-size=512 " + dir + "/api/index.js --port 4000\n",
			"\nWorkingDirectory=" + dir + "\n",
		},
		"web-reload.timer":   {"\nOnCalendar=*-*-* 03:00:00\n", "\nUnit=web-reload.service\n", "\nWantedBy=timers.target\n"},
		"web-reload.service": {"\nType=oneshot\n", "\nExecStart=/usr/bin/systemctl try-reload-or-restart web.service\n"},
	} {
		for _, want := range wants {
			if !strings.Contains(units[unit], want) {
				t.Errorf("%s lacks %q:\n%s", unit, want, units[unit])
			}
		}
	}
	for _, unit := range []string{"web.service", "api.service"} {
		if strings.Contains(units[unit], "MemoryDenyWriteExecute=yes") {
			t.Errorf("%s keeps MemoryDenyWriteExecute=yes for node", unit)
		}
	}
	for _, want := range []string{
		"pm2: app web: env_staging: pm2 start --env staging selects it",
		"pm2: app web: watch: drover does not watch files",
		"pm2: app web: ignore_watch: drover does not watch files",
		"pm2: app api: out_file: stdout goes to the journal: drover logs api",
		"pm2: app api: error_file: stderr goes to the journal",
	} {
		if !strings.Contains(stderr.String(), want+"") {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if n := strings.Count(stderr.String(), "\n"); n != 5 {
		t.Errorf("%d lines on stderr, want the 5 unmapped options:\n%s", n, stderr.String())
	}
	verifyUnits(t, units)
}

// verifyUnits runs systemd-analyze verify on the units, which checks
// every setting and that ExecStart='s programs exist.
func verifyUnits(t *testing.T, units map[string]string) {
	analyze := testbin.Tool(t, "systemd-analyze")
	dir := t.TempDir()
	var paths []string
	for name, content := range units {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Failed to initialize manager") {
			t.Skipf("systemd-analyze verify cannot run here: %s", out)
		}
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// Bad input is one line on stderr, exit 2, and nothing written, even for
// the apps before the bad one.
func TestInitFromPM2BadInput(t *testing.T) {
	node := testbin.Tool(t, "node")
	good := `{ name: 'web', script: 'server.js', env: { PORT: 3000 } }`
	for _, c := range []struct {
		name, config, path, want string
	}{
		{"does not parse", "module.exports = { apps: [", "", "node could not evaluate it"},
		{"no script", "module.exports = [" + good + ", { name: 'worker' }]", "", "app worker: no script"},
		{"port not a number", "module.exports = [" + good + ", { name: 'api', script: 'server.js', env: { PORT: 'http' } }]", "", `app api: env PORT "http": want a port number`},
		{"no node", "module.exports = [" + good + "]", t.TempDir(), "node not found"},
		{"bad cron", "module.exports = [{ name: 'web', script: 'server.js', env: { PORT: 3000 }, cron_restart: '0 0 L * *' }]", "", "cron_restart"},
		{"same name", "module.exports = [" + good + ", " + good + "]", "", "two apps named web"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := pm2Dir(t, c.config)
			unitDir := t.TempDir()
			cmd := exec.Command(bin.drover, "init", "--from-pm2", filepath.Join(dir, "ecosystem.config.js"), "--install", "--unit-dir", unitDir)
			path := filepath.Dir(node) + ":/usr/bin:/bin"
			if c.path != "" {
				path = c.path
			}
			cmd.Env = append(os.Environ(), "PATH="+path)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != exitUsage {
				t.Errorf("exit %d (%v), want %d", code, err, exitUsage)
			}
			msg := stderr.String()
			if !strings.Contains(msg, c.want) || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "drover init: ") {
				t.Errorf("stderr %q, want one line with %q", msg, c.want)
			}
			if entries, _ := os.ReadDir(unitDir); len(entries) > 0 {
				t.Errorf("wrote %v into --unit-dir", entries)
			}
		})
	}
}

// --from-pm2 takes the apps from the file: a NAME, a command, --listen or
// --metrics beside it are refused.
func TestInitFromPM2Flags(t *testing.T) {
	for _, args := range [][]string{
		{"web", "--from-pm2", "x.json"},
		{"--from-pm2", "x.json", "--", "/bin/true"},
		{"--from-pm2", "x.json", "--listen", "8080"},
		{"--from-pm2", "x.json", "--metrics", "127.0.0.1:9464"},
	} {
		var stdout, stderr strings.Builder
		if code := execute(append([]string{"init"}, args...), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--from-pm2") && !strings.Contains(stderr.String(), "not with --from-pm2") {
			t.Errorf("%q: exit %d, %q; want refused", args, code, stderr.String())
		}
	}
}
