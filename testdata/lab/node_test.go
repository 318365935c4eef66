package lab

import (
	"fmt"
	"strings"
	"time"
)

// testNodeJIT: Node under the shipped unit's MemoryDenyWriteExecute=yes
// dies by SIGTRAP before it is ready (V8's JIT is refused writable and
// executable memory); drover's STATUS= and journal name the setting and
// the fix. With MemoryDenyWriteExecute=no, the same unit serves.
func testNodeJIT(b *box) {
	node := "/usr/bin/node " + NodeWorkerPath
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("", node)))
	b.sh("systemctl", "start", "myapp.socket")
	if _, code := b.try("systemctl", "start", "myapp.service"); code == 0 {
		b.t.Fatal("node started under MemoryDenyWriteExecute=yes: this release's V8 needs no writable and executable memory, or the unit lost the setting")
	}
	st := b.showLogged("myapp.service", "StatusText")
	for _, want := range []string{"killed by SIG", "MemoryDenyWriteExecute=yes", "drover init"} {
		if !strings.Contains(st["StatusText"], want) {
			b.t.Errorf("STATUS= %q lacks %q: nothing tells the user why node dies", st["StatusText"], want)
		}
	}
	b.waitJournal("MemoryDenyWriteExecute=yes, under which a JIT")

	b.sh("systemctl", "stop", "myapp.socket", "myapp.service")
	b.quiet("systemctl", "reset-failed", "myapp.service", "myapp.socket")
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
MemoryDenyWriteExecute=no
`, b.execStart("", node)))
	b.sh("systemctl", "start", "myapp.socket")
	body, err := b.getRaw(30 * time.Second)
	if err != nil || !strings.HasPrefix(body, "hello from node-worker") {
		b.t.Fatalf("with MemoryDenyWriteExecute=no: %q, %v; want node-worker's answer", body, err)
	}
	b.t.Logf("with MemoryDenyWriteExecute=no node serves: %q", strings.TrimSpace(body))
}
