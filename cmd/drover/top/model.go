package top

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// Options tune the screen.
type Options struct {
	// Interval between refreshes (1s when zero).
	Interval time.Duration
	// LogLines is how many log lines to ask the Source for (the screen
	// shows as many as fit).
	LogLines int
}

// Model is drover top's state: the last snapshot, the CPU histories, and
// what the operator is doing (confirming a reload, waiting for one).
type Model struct {
	src  Source
	opts Options
	now  func() time.Time

	width, height int

	snap    Snapshot
	fetched time.Time // when snap.Drover was read
	err     error     // the last refresh's error, nil once one succeeds
	logs    []string
	logsErr error
	cpu     map[int]history // by pid

	confirming bool   // "reload? [y/N]" is on screen
	reloading  bool   // our reload request is under way
	message    string // the result of the last key's action
}

// New makes a Model reading src.
func New(src Source, opts Options) *Model {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.LogLines <= 0 {
		opts.LogLines = 100
	}
	return &Model{src: src, opts: opts, now: time.Now, cpu: map[int]history{}}
}

// Init starts the first refresh at once; each refresh schedules the next
// when it is done, so a slow drover never has refreshes piling up.
func (m *Model) Init() tea.Cmd { return m.refresh() }

// Update handles one message. It never blocks: everything that talks to
// drover runs in a command.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		return m, m.keys(msg)
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case snapshotMsg:
		m.apply(msg)
		return m, tea.Tick(m.opts.Interval, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.refresh()
	case reloadedMsg:
		m.reloading = false
		m.message = "reload done"
		if msg.err != nil {
			m.message = "reload failed: " + msg.err.Error()
		}
	case scaledMsg:
		// The next refresh (a second away at most) shows the change: an
		// extra one here would start a second chain of refreshes.
		m.message = scaleMessage(msg)
	}
	return m, nil
}

// apply takes in a refresh's results.
func (m *Model) apply(msg snapshotMsg) {
	m.err = msg.err
	if msg.snap.Unit != nil || m.snap.Unit == nil {
		m.snap.Unit = msg.snap.Unit
	}
	m.snap.Control = msg.snap.Control
	if d := msg.snap.Drover; d != nil {
		m.snap.Drover, m.fetched = d, msg.at
		record(m.cpu, d.Processes)
	}
	m.logs, m.logsErr = msg.logs, msg.logsErr
}

// keys handles what the terminal sent at once. Keys typed faster than
// they are read (tmux send-keys r y, a held key) come as one message
// with several runes: each counts, as if read alone. A paste is no keys.
func (m *Model) keys(k tea.KeyMsg) tea.Cmd {
	if k.Paste {
		return nil
	}
	if k.Type != tea.KeyRunes || len(k.Runes) < 2 {
		return m.key(k)
	}
	var cmds []tea.Cmd
	for _, r := range k.Runes {
		cmd := m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
		if cmd != nil {
			cmds = append(cmds, cmd)
		}
		if r == 'q' {
			return tea.Quit
		}
	}
	return tea.Batch(cmds...)
}

// key handles a key: q and ctrl+c quit at any time, r asks before it
// reloads, + and - scale by one.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "q", "ctrl+c":
		return tea.Quit
	}
	if m.confirming {
		m.confirming = false
		if k.String() != "y" && k.String() != "Y" {
			m.message = "reload cancelled"
			return nil
		}
		m.reloading, m.message = true, "reloading…"
		return m.reload()
	}
	switch k.String() {
	case "r":
		if m.reloading {
			m.message = "a reload is already under way"
			return nil
		}
		m.confirming = true
	case "+", "=":
		return m.scale(+1)
	case "-", "_":
		return m.scale(-1)
	}
	return nil
}

func scaleMessage(msg scaledMsg) string {
	if msg.err != nil {
		return "scale failed: " + msg.err.Error()
	}
	return "scaling to " + count(msg.workers, "worker")
}
