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
	files := renderUnits("web", "/opt/myapp/bin/drover", []string{"/usr/bin/myapp", "--config", "/etc/myapp.conf"}, o)
	if len(files) != 2 {
		t.Fatalf("%d units without --metrics, want 2", len(files))
	}
	socket, service := files[0].content, files[1].content
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

// --metrics adds NAME-metrics.socket, passed to the service beside the
// app's socket under the name drover keeps for itself.
func TestInitMetricsSocket(t *testing.T) {
	fs, o := initFlags()
	if err := fs.Parse([]string{"--listen", "8080", "--metrics", "127.0.0.1:9464"}); err != nil {
		t.Fatal(err)
	}
	files := renderUnits("web", "/usr/bin/drover", []string{"/usr/bin/myapp"}, o)
	if len(files) != 3 || files[2].name != "web-metrics.socket" {
		t.Fatalf("units %v, want web.socket, web.service and web-metrics.socket", files)
	}
	for _, c := range []struct {
		unit string
		want []string
	}{
		{files[1].content, []string{
			"\nExecStart=/usr/bin/drover run --metrics-socket metrics -- /usr/bin/myapp\n",
			"\nRequires=web.socket web-metrics.socket\n",
			"\nAfter=web.socket web-metrics.socket\n",
			"\n[Service]\n# Keep: the app's sockets",
			"\nSockets=web.socket web-metrics.socket\n",
		}},
		{files[2].content, []string{
			"\nListenStream=127.0.0.1:9464\n",
			"\nFileDescriptorName=metrics\n",
			"\nService=web.service\n",
			"\nWantedBy=sockets.target\n",
		}},
		{files[0].content, []string{"\nListenStream=8080\n", "\nFileDescriptorName=web\n"}},
	} {
		for _, want := range c.want {
			if !strings.Contains(c.unit, want) {
				t.Errorf("lacks %q:\n%s", want, c.unit)
			}
		}
	}
}
