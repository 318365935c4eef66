package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drover init leaves MemoryDenyWriteExecute= out for a program with a
// JIT, recognised by name, symlink target or shebang, says why in its
// place, and runs Node with drover run --node; --jit and --no-jit
// override the guess.
func TestInitJIT(t *testing.T) {
	dir := t.TempDir()
	exe := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	link := func(name, target string) string {
		path := filepath.Join(dir, name)
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	node := exe("node", "\x7fELF")
	javaHome := filepath.Join(dir, "jvm", "bin")
	if err := os.MkdirAll(javaHome, 0o755); err != nil {
		t.Fatal(err)
	}
	java := filepath.Join(javaHome, "java")
	if err := os.WriteFile(java, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		command string
		flags   []string
		jit     string // the comment's program, "" to keep the setting
		node    bool
	}{
		{"node", node, nil, "node", true},
		{"node18", exe("node18", "\x7fELF"), nil, "node", true},
		{"nodejs", exe("nodejs", "\x7fELF"), nil, "nodejs", true},
		{"symlink to node", link("server-runtime", node), nil, "node", true},
		{"java through alternatives", link("alternatives-java", java), nil, "java", false},
		{"dotnet", exe("dotnet", "\x7fELF"), nil, "dotnet", false},
		{"luajit-2.1", exe("luajit-2.1", "\x7fELF"), nil, "luajit", false},
		{"pypy3.10", exe("pypy3.10", "\x7fELF"), nil, "pypy", false},
		{"env node shebang", exe("server.js", "#!/usr/bin/env node\nrequire('http')\n"), nil, "node", true},
		{"env -S shebang", exe("tool", "#!/usr/bin/env -S node --max-old-space-size=100\n"), nil, "node", true},
		{"pypy shebang", exe("app", "#!/usr/bin/pypy3 -O\n"), nil, "pypy", false},
		{"plain program", exe("myapp", "\x7fELF"), nil, "", false},
		{"python shebang", exe("app.py", "#!/usr/bin/python3\n"), nil, "", false},
		{"--no-jit", node, []string{"--no-jit"}, "", true},
		{"--jit", filepath.Join(dir, "myapp"), []string{"--jit"}, "the program", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs, o := initFlags()
			if err := fs.Parse(append([]string{"--listen", "8080"}, c.flags...)); err != nil {
				t.Fatal(err)
			}
			command := []string{c.command, "-v"}
			if err := o.resolveCommand(command); err != nil {
				t.Fatal(err)
			}
			service := renderUnits("web", "/usr/bin/drover", command, o)[1].content
			kept := strings.Contains(service, "\nMemoryDenyWriteExecute=yes\n")
			switch {
			case c.jit == "" && !kept:
				t.Errorf("MemoryDenyWriteExecute=yes left out:\n%s", service)
			case c.jit != "" && kept:
				t.Errorf("MemoryDenyWriteExecute=yes kept for a JIT:\n%s", service)
			case c.jit != "" && !strings.Contains(service, "\n# No MemoryDenyWriteExecute=: "+c.jit+"'s JIT needs writable and executable memory") &&
				!strings.Contains(service, "\n# No MemoryDenyWriteExecute=: "+c.jit+" has a JIT"):
				t.Errorf("no comment saying why for %s:\n%s", c.jit, service)
			case c.jit != "" && strings.Contains(service, "# Refuses memory that is writable"):
				t.Errorf("the template's advice to remove the line is left behind:\n%s", service)
			}
			// Node's os.networkInterfaces() needs netlink.
			if netlink := strings.Contains(service, "\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n"); netlink != c.node {
				t.Errorf("AF_NETLINK in RestrictAddressFamilies=: %t, want %t:\n%s", netlink, c.node, service)
			}
			if hasNode := strings.Contains(service, " run --node -- "); hasNode != c.node {
				t.Errorf("--node in ExecStart: %t, want %t:\n%s", hasNode, c.node, service)
			}
		})
	}
	fs, o := initFlags()
	if err := fs.Parse([]string{"--jit", "--no-jit"}); err != nil {
		t.Fatal(err)
	}
	if err := o.resolveCommand([]string{node}); err == nil || !strings.Contains(err.Error(), "--jit and --no-jit") {
		t.Errorf("--jit --no-jit: %v, want refused", err)
	}
}
