package main

import (
	"strings"
	"testing"
)

// TestInitKeepsUserValues: drover init renames the templates' placeholder
// (myapp) in their own lines, never in what the user gave, even when that
// contains "myapp" too: the lab found `drover init web -- /usr/bin/myapp`
// writing ExecStart=... -- /usr/bin/web.
func TestInitKeepsUserValues(t *testing.T) {
	fs, o := initFlags()
	if err := fs.Parse([]string{"--listen", "myapp=unix:/run/myapp/http.sock", "--listen", "127.0.0.1:8080", "--user", "myapp"}); err != nil {
		t.Fatal(err)
	}
	socket, service := renderUnits("web", "/opt/myapp/bin/drover", []string{"/usr/bin/myapp", "--config", "/etc/myapp.conf"}, o)
	for _, want := range []string{
		"\nListenStream=/run/myapp/http.sock\n",
		"\nListenStream=127.0.0.1:8080\n",
		"\nFileDescriptorName=myapp\n",
		"\nDescription=web listening socket (served by drover)\n",
	} {
		if !strings.Contains(socket, want) {
			t.Errorf("web.socket lacks %q:\n%s", want, socket)
		}
	}
	for _, want := range []string{
		"\nExecStart=/opt/myapp/bin/drover run -- /usr/bin/myapp --config /etc/myapp.conf\n",
		"\nExecReload=/opt/myapp/bin/drover reload\n",
		"\nUser=myapp\n",
		"\nRequires=web.socket\n",
		"\nRuntimeDirectory=web\n",
	} {
		if !strings.Contains(service, want) {
			t.Errorf("web.service lacks %q:\n%s", want, service)
		}
	}
	for _, unit := range []string{socket, service} {
		for line := range strings.SplitSeq(unit, "\n") {
			if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "ListenStream=") || strings.HasPrefix(line, "FileDescriptorName=") ||
				strings.HasPrefix(line, "ExecStart=") || strings.HasPrefix(line, "ExecReload=") || strings.HasPrefix(line, "User=") {
				continue
			}
			if strings.Contains(line, "myapp") {
				t.Errorf("template line not renamed: %q", line)
			}
		}
	}
}
