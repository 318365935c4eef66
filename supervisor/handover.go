package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/droverd/drover/supervisor/metrics"
	"github.com/droverd/drover/supervisor/sockets"
)

// HandoverFormat is the version of the state a drover hands to the image
// that replaces it (drover upgrade). A drover reads every format from 1 up
// to its own; before exec'ing a new binary, drover asks it which formats
// it reads (drover upgrade-check) and refuses to hand over one it does
// not, so the running image keeps running.
//
// Format 1 (JSON, in a memfd whose number is in DROVER_HANDOVER_FD):
// every descriptor the state names is open in the new image under the
// same number (the old image clears close-on-exec on it), so the pinned
// executable's /proc/<pid>/fd/<n> link stays valid. Fields are only ever
// added within a format; a change that an older reader would misread is
// a new format.
const HandoverFormat = 1

// HandoverFormats lists the formats this drover reads.
var HandoverFormats = []int{1}

// handoverEnv names the descriptor of the state in the new image.
const handoverEnv = "DROVER_HANDOVER_FD"

type handover struct {
	Format  int    `json:"format"`
	Version string `json:"version"` // of the drover that wrote it
	// Started is when the first image started; Upgraded when this
	// handover began.
	Started  time.Time `json:"started"`
	Upgraded time.Time `json:"upgraded"`

	Sockets      []handoverSocket `json:"sockets"`
	Metrics      *handoverSocket  `json:"metrics,omitempty"`
	Control      *handoverSocket  `json:"control,omitempty"`
	WorkerNotify handoverSocket   `json:"worker_notify"`

	PinDir     string         `json:"pin_dir,omitempty"`
	PinLockFD  int            `json:"pin_lock_fd"` // -1: none
	RemovePins bool           `json:"remove_pins"`
	Generation handoverGen    `json:"generation"`
	Slots      []handoverSlot `json:"slots"`

	Restarts      int    `json:"restarts"`
	Reloads       int    `json:"reloads"`
	Recycles      int    `json:"recycles"`
	Hung          int    `json:"hung"`
	ReloadFailure string `json:"reload_failure,omitempty"`
	Launches      int    `json:"launches"`
	// Counters are the metrics' counters, carried on (metrics.Carry).
	Counters []metrics.Carried `json:"counters,omitempty"`
}

// handoverSocket is one descriptor and what describes it.
type handoverSocket struct {
	FD     int    `json:"fd"`
	Name   string `json:"name,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Unlink string `json:"unlink,omitempty"`
}

type handoverGen struct {
	Number int    `json:"number"`
	Path   string `json:"path"`
	FD     int    `json:"fd"` // the pinned executable, -1: run by path
	Link   string `json:"link,omitempty"`
}

type handoverSlot struct {
	ID             int            `json:"id"`
	Failures       []time.Time    `json:"failures,omitempty"`
	Consecutive    int            `json:"consecutive"`
	Restarts       int            `json:"restarts"`
	Recycles       int            `json:"recycles"`
	RecycleReason  string         `json:"recycle_reason,omitempty"`
	RecycleKind    string         `json:"recycle_kind,omitempty"`
	RecycleBackoff time.Duration  `json:"recycle_backoff"`
	LastFailure    int            `json:"last_failure"`
	Worker         handoverWorker `json:"worker"`
}

type handoverWorker struct {
	Pid              int           `json:"pid"`
	Started          time.Time     `json:"started"`
	ReadyAt          time.Time     `json:"ready_at"`
	Status           string        `json:"status,omitempty"`
	LastPing         time.Time     `json:"last_ping,omitzero"`
	WatchdogInterval time.Duration `json:"watchdog_interval"`
	Memory           int64         `json:"memory"`
	// Stdout and Stderr are the read ends of its output pipes, -1 where
	// the stream had ended (under journald workers write to it directly).
	Stdout int    `json:"stdout"`
	Stderr int    `json:"stderr"`
	Cgroup string `json:"cgroup,omitempty"` // its cgroup's name in drover's tree
	// Channel is drover's end of its Node IPC channel (--node), -1: none.
	Channel int `json:"channel"`
	// Streams are drover's copies of its journal streams (execstatus.go),
	// so that the next image too reaps it only once journald has read
	// what it wrote.
	Streams []int `json:"streams,omitempty"`
}

// readHandover reads the state an earlier image left in f.
func readHandover(f *os.File) (*handover, error) {
	defer f.Close()
	var h handover
	if err := json.NewDecoder(f).Decode(&h); err != nil {
		return nil, fmt.Errorf("read the handed-over state: %w", err)
	}
	for _, v := range HandoverFormats {
		if h.Format == v {
			return &h, nil
		}
	}
	return nil, fmt.Errorf("the handed-over state is format %d; this drover reads %v", h.Format, HandoverFormats)
}

// writeHandover puts h in a memfd that survives exec.
func writeHandover(h *handover) (*os.File, error) {
	fd, err := unix.MemfdCreate("drover-handover", 0) // no MFD_CLOEXEC: it is for the next image
	if err != nil {
		return nil, fmt.Errorf("create the handover memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "drover-handover")
	if err := json.NewEncoder(f).Encode(h); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the handover state: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("rewind the handover state: %w", err)
	}
	return f, nil
}

// keptFDs are descriptors whose close-on-exec flag a handover cleared;
// restore puts it back when the exec failed.
type keptFDs []int

func (k *keptFDs) keep(fd int) error {
	if fd < 0 {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("keep fd %d across exec: %w", fd, err)
	}
	*k = append(*k, fd)
	return nil
}

// keepConn keeps c's descriptor across exec and returns its number; what
// names it in the error.
func (k *keptFDs) keepConn(c syscall.Conn, what string) (int, error) {
	fd, err := sockets.FD(c)
	if err == nil {
		err = k.keep(fd)
	}
	if err != nil {
		return -1, fmt.Errorf("hand over %s: %w", what, err)
	}
	return fd, nil
}

func (k keptFDs) restore() {
	for _, fd := range k {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
}

// adoptFile is the descriptor n of the state as a file, nil for -1.
func adoptFile(n int, name string) *os.File {
	if n < 0 {
		return nil
	}
	unix.CloseOnExec(n) // ours now; the workers must not inherit it
	return os.NewFile(uintptr(n), name)
}
