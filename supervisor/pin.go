package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// pinDirPrefix starts the name of every drover's pin directory:
// drover-exe-<pid>-<random>, so that a later drover can tell whose it is.
const pinDirPrefix = "drover-exe-"

// makePinDir makes this drover's pin directory in parent (the system's temp
// directory if ""), after removing the ones that drovers which could not
// clean up (kill -9, the OOM killer) left there; otherwise each such death
// in dev mode leaves one more in $TMPDIR. The returned file holds a lock on
// the directory for as long as drover lives (nil where the file system has
// no locks): the pid in the name is only meaningful in drover's own pid
// namespace, and the lock tells a drover in another one that shares the
// directory that this one is alive.
func makePinDir(parent string) (dir string, lock *os.File, removed []string, err error) {
	if parent == "" {
		parent = os.TempDir()
	}
	removed = removeStalePinDirs(parent)
	dir, err = os.MkdirTemp(parent, pinDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", nil, removed, fmt.Errorf("make pin directory in %s: %w", parent, err)
	}
	if lock, err = os.Open(dir); err == nil {
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			lock.Close()
			lock = nil
		}
	}
	return dir, lock, removed, nil
}

// removeStalePinDirs removes the pin directories in parent that are ours
// (our user's) and whose drover is gone: its pid no longer exists and no
// one holds the directory's lock. It returns what it removed.
func removeStalePinDirs(parent string) []string {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(e.Name(), pinDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !strings.HasPrefix(e.Name(), pinDirPrefix) || !ok || err != nil || pid <= 0 || !e.IsDir() {
			continue
		}
		path := filepath.Join(parent, e.Name())
		if unix.Kill(pid, 0) != unix.ESRCH || !ownedByUs(path) {
			continue
		}
		lock, err := os.Open(path)
		if err != nil {
			continue
		}
		// Held while removing, so that no other drover removes it too; a
		// file system without locks leaves the pid to decide.
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
			if os.RemoveAll(path) == nil {
				removed = append(removed, path)
			}
		}
		lock.Close()
	}
	return removed
}

// ownedByUs reports whether path (not followed) belongs to drover's user.
func ownedByUs(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
