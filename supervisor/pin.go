package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// pinnedExe keeps a generation's executable open, so drover can start more
// workers of that version after the file on disk was replaced: a restart
// after a failed reload, or a rollback, runs the version that was working,
// not the broken build that is now installed. Package managers replace
// files by rename, so the open file keeps the old content.
//
// Workers are exec'd through a symlink to /proc/<drover>/fd/<n>: the
// kernel follows it to the pinned file, the worker's name (comm, what ps
// and journald show) is the symlink's name, which is the command's own, and
// scripts work too, since their interpreter opens the same path.
type pinnedExe struct {
	path string   // the command as resolved when pinned
	file *os.File // nil when pinning was not possible: exec by path
	link string
}

// openExe opens the command a generation runs, so that it can be pinned.
func openExe(path string) (*pinnedExe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open worker command %s: %w", path, err)
	}
	return &pinnedExe{path: path, file: f}, nil
}

// pin links the open command under dir/<generation>/. Without a dir (no
// writable place at start), or when the link cannot be made (the runtime
// directory filled up, was removed or made read-only since), the generation
// is exec'd by path instead: it still runs, and only a restart or rollback
// after the file on disk changed would run the new file. The error says
// why it is not pinned; the caller warns, since serving goes on.
func (p *pinnedExe) pin(dir string, generation int) error {
	if dir == "" {
		p.unpin()
		return nil
	}
	genDir := filepath.Join(dir, strconv.Itoa(generation))
	if err := os.MkdirAll(genDir, 0o700); err != nil {
		p.unpin()
		return fmt.Errorf("pin worker command %s in %s: %w", p.path, dir, err)
	}
	link := filepath.Join(genDir, filepath.Base(p.path))
	target := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), p.file.Fd())
	if err := os.Symlink(target, link); err != nil {
		os.Remove(genDir)
		p.unpin()
		return fmt.Errorf("pin worker command %s in %s: %w", p.path, dir, err)
	}
	p.link = link
	return nil
}

// unpin falls back to exec by path.
func (p *pinnedExe) unpin() {
	p.file.Close()
	p.file = nil
}

// execPath is what the trampoline executes.
func (p *pinnedExe) execPath() string {
	if p.file == nil {
		return p.path
	}
	return p.link
}

func (p *pinnedExe) close() {
	if p.file == nil {
		return
	}
	os.Remove(p.link)
	os.Remove(filepath.Dir(p.link))
	p.file.Close()
	p.file = nil
}
