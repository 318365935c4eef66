package proctree

import (
	"os"
	"slices"
)

// Descendants lists every live descendant of pid (children, their children,
// ...), not pid itself, zombies left out. It is a snapshot: a process that
// is not stopped may fork right after (KillTree deals with that).
func Descendants(pid int) ([]int, error) { return sysProc.descendants(pid) }

func (p *procfs) descendants(pid int) ([]int, error) {
	if !p.hasChildrenFiles() {
		all, err := p.scan()
		if err != nil {
			return nil, err
		}
		return walk(all, []int{pid}), nil
	}
	var out []int
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		kids, err := p.childrenOf(parent)
		if err != nil {
			return nil, err
		}
		for _, kid := range kids {
			// seen guards against a pid reused while we walk.
			if seen[kid] {
				continue
			}
			seen[kid] = true
			if st, err := p.stat(kid); err == nil && !st.Dead() {
				out = append(out, kid)
				queue = append(queue, kid)
			}
		}
	}
	return out, nil
}

// walk returns the live descendants of roots in a scan, roots excluded.
func walk(all map[int]Stat, roots []int) []int {
	kids := map[int][]int{}
	for pid, st := range all {
		if pid != st.PPid {
			kids[st.PPid] = append(kids[st.PPid], pid)
		}
	}
	seen := map[int]bool{}
	for _, r := range roots {
		seen[r] = true
	}
	var out []int
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, kid := range kids[parent] {
			if seen[kid] || all[kid].Dead() {
				continue
			}
			seen[kid] = true
			out = append(out, kid)
			queue = append(queue, kid)
		}
	}
	return out
}

// Orphans lists our live children that are not in known: processes that
// were adopted by us as subreaper when their parent died. known holds the
// pids of the children we started (our workers).
func Orphans(known map[int]bool) ([]int, error) {
	kids, err := sysProc.ourChildren(os.Getpid())
	if err != nil {
		return nil, err
	}
	var out []int
	for _, st := range kids {
		if !known[st.Pid] && !st.Dead() {
			out = append(out, st.Pid)
		}
	}
	return out, nil
}

// ourChildren lists the children of self, zombies included.
func (p *procfs) ourChildren(self int) ([]Stat, error) {
	var out []Stat
	if p.hasChildrenFiles() {
		kids, err := p.childrenOf(self)
		if err != nil {
			return nil, err
		}
		for _, kid := range kids {
			if st, err := p.stat(kid); err == nil && st.PPid == self {
				out = append(out, st)
			}
		}
		return out, nil
	}
	all, err := p.scan()
	if err != nil {
		return nil, err
	}
	for _, st := range all {
		if st.PPid == self {
			out = append(out, st)
		}
	}
	return out, nil
}

// Trees lists the live descendants of each of roots from one look at
// /proc: for sampling many workers at once, where Descendants would scan
// /proc once per worker.
func Trees(roots []int) (map[int][]int, error) {
	all, err := sysProc.scan()
	if err != nil {
		return nil, err
	}
	out := make(map[int][]int, len(roots))
	for _, r := range roots {
		out[r] = walk(all, []int{r})
	}
	return out, nil
}
