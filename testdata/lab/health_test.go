package lab

import (
	"fmt"
	"strings"
	"time"
)

// testHealth: under load, a leaking worker is recycled with no failed
// request; a hung worker (it stops pinging, keeps its socket) is killed
// with SIGABRT, leaves its goroutines in the journal and is replaced while
// the unit stays active with NRestarts unchanged; a worker that closed its
// listener is replaced with no failed request.
func testHealth(b *box) {
	b.dropIn("myapp.service", fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s
`, b.execStart("--max-memory 100M --memory-interval 200ms --worker-watchdog 2s --hang-grace 5s", TestworkerPath+" -mode health")))
	b.startByConnection()
	before := b.showLogged("myapp.service", "MainPID", "NRestarts")
	ld := startLoad(b.port, "warm-up")
	b.t.Cleanup(ld.Stop)
	b.waitLoad(ld, 50)
	url := func(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", b.port, path) }
	healthy := func(what string, done func(droverStatus) bool) droverStatus {
		return b.waitStatus(what, "myapp", 30*time.Second, true, func(st droverStatus) bool {
			ready := 0
			for _, p := range st.Drover.Processes {
				if p.State == "ready" {
					ready++
				}
			}
			return ready == workers && len(st.Drover.Processes) == workers && done(st)
		})
	}

	leak := ld.Next("a worker leaks 200M over --max-memory 100M") + 1
	start := time.Now()
	b.sh("curl", "-sS", "-o", "/dev/null", url("/leak?mb=200"))
	st := healthy("the leaking worker to be recycled", func(st droverStatus) bool { return st.Drover.Recycles == 1 })
	b.t.Logf("recycled %v after the leak (sampled every 200ms)", time.Since(start).Round(time.Millisecond))
	if st.Drover.Restarts != 0 {
		b.t.Errorf("a recycle counted as %d restarts", st.Drover.Restarts)
	}
	b.waitLoad(ld, 50)

	hang := ld.Next("a worker stops pinging the watchdog (2s)") + 1
	start = time.Now()
	b.sh("curl", "-sS", "-o", "/dev/null", url("/hang"))
	healthy("the hung worker to be replaced", func(st droverStatus) bool { return st.Drover.Restarts == 1 })
	b.t.Logf("hung worker replaced %v after it stopped pinging", time.Since(start).Round(time.Millisecond))
	b.waitLoad(ld, 50)

	closed := ld.Next("a worker closes its listener") + 1
	start = time.Now()
	b.sh("curl", "-sS", "-o", "/dev/null", url("/close"))
	healthy("the deaf worker to be recycled", func(st droverStatus) bool { return st.Drover.Recycles == 2 })
	b.t.Logf("deaf worker recycled %v after it closed its listener", time.Since(start).Round(time.Millisecond))
	b.waitLoad(ld, 50)
	ld.Stop()

	for _, i := range []int{leak, hang, closed} {
		p := ld.Phase(i)
		for c, name := range clientNames {
			lost := p.clients[c].failed + p.clients[c].connErrs
			b.t.Logf("%s: %-10s %s", p.name, name, p.clients[c])
			// The hung worker is killed with the connections it holds: at
			// most the one each client had open to it.
			if allowed := map[bool]int{true: 1, false: 0}[i == hang]; lost > allowed {
				b.t.Errorf("%s: %s client lost %d requests, want at most %d", p.name, name, lost, allowed)
			}
		}
	}
	after := b.showLogged("myapp.service", "MainPID", "NRestarts", "ActiveState")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] || after["ActiveState"] != "active" {
		b.t.Errorf("MainPID %s->%s, NRestarts %s->%s, %s; want drover kept, NRestarts unchanged, active",
			before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"], after["ActiveState"])
	}
	j := b.waitJournal("recycling worker", "worker recycled", "worker hung: killing it", "SIGABRT: abort", "goroutine ")
	if !strings.Contains(j, "memory ") {
		b.t.Errorf("the journal does not give the recycle's reason")
	}
}
