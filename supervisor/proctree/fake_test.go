package proctree

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProc builds a /proc with the given stat lines (and children files
// per thread when withChildren), for the parsing and walking logic. This
// host's kernel has no CONFIG_PROC_CHILDREN, so the children-file path is
// only exercised here.
func fakeProc(t *testing.T, withChildren bool) *procfs {
	t.Helper()
	root := t.TempDir()
	stats := map[int]string{
		100: "100 (worker) S 1 100 100 0 -1",
		101: "101 (a b) c)) S 100 100 100 0 -1", // a comm with spaces and ')'
		102: "102 (dead) Z 100 100 100 0 -1",
		103: "103 (grandchild) S 101 100 100 0 -1",
		104: "104 (setsid) S 100 104 104 0 -1",
		200: "200 (stranger) S 1 200 200 0 -1",
	}
	children := map[string]string{ // pid/tid -> children
		"100/100": "101 102 ",
		"100/105": "104 ", // forked by another thread of 100
		"101/101": "103 ",
		"102/102": "",
		"103/103": "",
		"104/104": "",
		"200/200": "",
	}
	for pid, line := range stats {
		writeFake(t, filepath.Join(root, strconv.Itoa(pid), "stat"), line+"\n")
	}
	for task, kids := range children {
		pid, tid, _ := strings.Cut(task, "/")
		dir := filepath.Join(root, pid, "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if withChildren {
			writeFake(t, filepath.Join(dir, "children"), kids)
		}
	}
	if withChildren {
		writeFake(t, filepath.Join(root, "self", "task", "1", "children"), "")
	}
	return &procfs{root: root}
}

func writeFake(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDescendantsFake(t *testing.T) {
	for _, withChildren := range []bool{true, false} {
		p := fakeProc(t, withChildren)
		if p.hasChildrenFiles() != withChildren {
			t.Fatalf("hasChildrenFiles = %v, want %v", p.hasChildrenFiles(), withChildren)
		}
		got, err := p.descendants(100)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{101, 103, 104}; !sameSet(got, want) {
			t.Errorf("children files %v: descendants(100) = %v, want %v (zombie 102 left out)", withChildren, got, want)
		}
		kids, err := p.ourChildren(100)
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		for _, st := range kids {
			pids = append(pids, st.Pid)
		}
		if want := []int{101, 102, 104}; !sameSet(pids, want) {
			t.Errorf("children files %v: ourChildren(100) = %v, want %v", withChildren, pids, want)
		}
		members, err := p.members(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		// 104 left the group but is still 100's child.
		if want := []int{100, 101, 103, 104}; !sameSet(members, want) {
			t.Errorf("members(0, 100) = %v, want %v", members, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for in, want := range map[string]Stat{
		"1 (systemd) S 0 1 1 0 -1 4194560":      {Pid: 1, PPid: 0, Pgid: 1, Sid: 1, State: 'S'},
		"7 ((sd-pam)) S 6 6 6 0":                {Pid: 7, PPid: 6, Pgid: 6, Sid: 6, State: 'S'},
		"9 (a ) b (c) Z 1 2 3 4":                {Pid: 9, PPid: 1, Pgid: 2, Sid: 3, State: 'Z'},
		"12 (x\ny) t 11 10 10 0 -1 0 0 0 0 0 0": {Pid: 12, PPid: 11, Pgid: 10, Sid: 10, State: 't'},
	} {
		got, err := parseStat([]byte(in))
		if err != nil || got != want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1 S 0 1 1", "1 (x) S 0", "x (y) S 1 2 3", "1 (x) SS 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("7 ((sd-pam)) S 6 6 6 0"))
	f.Add([]byte("1 (x) S 0"))
	f.Fuzz(func(t *testing.T, data []byte) { parseStat(data) })
}

func TestWorkerOfFake(t *testing.T) {
	p := fakeProc(t, false)
	for env, want := range map[string][3]int{
		"A=1\x00DROVER_WORKER_ID=4\x00DROVER_GENERATION=9\x00": {4, 9, 1},
		"DROVER_GENERATION=0\x00DROVER_WORKER_ID=0":            {0, 0, 1},
		"DROVER_WORKER_ID=4\x00":                               {0, 0, 0},
		"DROVER_WORKER_ID=x\x00DROVER_GENERATION=9\x00":        {0, 0, 0},
		"XDROVER_WORKER_ID=4\x00DROVER_GENERATION=9\x00":       {0, 0, 0},
	} {
		writeFake(t, filepath.Join(p.root, "101", "environ"), env)
		slot, gen, ok := p.workerOf(101)
		if got := [3]int{slot, gen, b2i(ok)}; got != want {
			t.Errorf("workerOf with %q = %v, want %v", env, got, want)
		}
	}
	if _, _, ok := p.workerOf(999); ok {
		t.Error("workerOf of a missing process succeeded")
	}
	// Group evidence when the environment says nothing.
	writeFake(t, filepath.Join(p.root, "101", "environ"), "A=1\x00")
	groups := map[int]Tag{100: {Slot: 2, Generation: 5}}
	if tag, how := p.attribute(101, groups); how != ByProcessGroup || tag != (Tag{2, 5}) {
		t.Errorf("attribute(101) = %v by %v", tag, how)
	}
	if _, how := p.attribute(104, groups); how != Unattributed {
		t.Errorf("attribute(104) by %v, want unattributed", how)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
