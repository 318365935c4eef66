package top

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

func teaWindow(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// press sends a key and runs the command it returns, if any, feeding its
// message back: the round trip a key makes in the running program.
func press(t *testing.T, m *Model, key string) tea.Msg {
	t.Helper()
	_, cmd := m.Update(keyMsg(key))
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if _, quit := msg.(tea.QuitMsg); !quit {
		m.Update(msg)
	}
	return msg
}

// refreshed runs one refresh as the program would: Init's command, then
// its message into Update. It returns the command Update scheduled.
func refreshed(t *testing.T, m *Model) tea.Cmd {
	t.Helper()
	msg := m.refresh()()
	if _, ok := msg.(snapshotMsg); !ok {
		t.Fatalf("refresh gave %T", msg)
	}
	_, next := m.Update(msg)
	return next
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := newTestModel(&fakeSource{})
		if _, ok := press(t, m, k).(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
	// q quits even while the reload question is on screen.
	m := newTestModel(&fakeSource{})
	press(t, m, "r")
	if _, ok := press(t, m, "q").(tea.QuitMsg); !ok {
		t.Error("q at the reload question does not quit")
	}
}

func TestReloadAsksFirst(t *testing.T) {
	src := &fakeSource{snap: Snapshot{Drover: twoWorkers()}}
	m := newTestModel(src)
	press(t, m, "r")
	if !strings.Contains(m.View(), "[y/N]") || src.reloads != 0 {
		t.Fatalf("r: no question, or reloaded at once (%d):\n%s", src.reloads, m.View())
	}
	for _, no := range []string{"n", "esc", "x"} {
		press(t, m, "r")
		press(t, m, no)
		if src.reloads != 0 || m.confirming || !strings.Contains(m.View(), "reload cancelled") {
			t.Fatalf("r then %s: %d reloads\n%s", no, src.reloads, m.View())
		}
	}
	press(t, m, "r")
	press(t, m, "y")
	if src.reloads != 1 || !strings.Contains(m.View(), "reload done") {
		t.Fatalf("r then y: %d reloads\n%s", src.reloads, m.View())
	}
}

// The reload runs in a command: the screen goes on refreshing meanwhile,
// says one is under way, and shows the failure when it comes.
func TestReloadInProgressAndFailure(t *testing.T) {
	src := &fakeSource{snap: Snapshot{Drover: twoWorkers()}, reloadErr: errors.New("worker 0 exited: \x1b[2Jbad")}
	m := newTestModel(src)
	press(t, m, "r")
	_, cmd := m.Update(keyMsg("y"))
	if cmd == nil || !m.reloading || !strings.Contains(m.View(), "reloading…") {
		t.Fatalf("y: no command or no progress shown\n%s", m.View())
	}
	press(t, m, "r")
	if m.confirming || !strings.Contains(m.View(), "already under way") {
		t.Fatalf("r during a reload asks again:\n%s", m.View())
	}
	m.Update(cmd())
	view := m.View()
	if m.reloading || !strings.Contains(view, `reload failed: worker 0 exited: \x1b[2Jbad`) || strings.Contains(view, "\x1b[2J") {
		t.Fatalf("failed reload shown as:\n%q", view)
	}
}

func TestScaleKeys(t *testing.T) {
	src := &fakeSource{}
	m := newTestModel(src)
	press(t, m, "+")
	if !strings.Contains(m.View(), "scaling to 3 workers") {
		t.Errorf("+:\n%s", m.View())
	}
	press(t, m, "-")
	if len(src.scales) != 2 || src.scales[0] != 1 || src.scales[1] != -1 || !strings.Contains(m.View(), "scaling to 1 worker") {
		t.Errorf("+ then -: scaled by %v\n%s", src.scales, m.View())
	}
}

// A refresh schedules the next one only when it is done, and a failed
// one keeps the last workers on screen with the error.
func TestRefreshKeepsLastWorkersOnError(t *testing.T) {
	src := &fakeSource{snap: Snapshot{Drover: twoWorkers()}}
	m := newTestModel(src)
	if m.Init() == nil || refreshed(t, m) == nil {
		t.Fatal("no first refresh, or no next one scheduled")
	}
	src.snap, src.err = Snapshot{}, errors.New("connect to drover: no such file")
	refreshed(t, m)
	view := m.View()
	if !strings.Contains(view, "4101") || !strings.Contains(view, "cannot read drover: connect to drover: no such file (workers as of 12:00:00)") {
		t.Fatalf("after a failed refresh:\n%s", view)
	}
	src.err = nil
	src.snap = Snapshot{Drover: twoWorkers()}
	refreshed(t, m)
	if strings.Contains(m.View(), "cannot read drover") {
		t.Fatalf("error kept after a good refresh:\n%s", m.View())
	}
}

// Only a refresh schedules the next one: an action's result must not
// start a second chain of refreshes (which would sample CPU twice as
// often and double the load on drover).
func TestResultsStartNoRefresh(t *testing.T) {
	m := newTestModel(&fakeSource{})
	for _, msg := range []tea.Msg{reloadedMsg{}, scaledMsg{workers: 3}, teaWindow(80, 20)} {
		if _, cmd := m.Update(msg); cmd != nil {
			t.Errorf("%T returned a command", msg)
		}
	}
	if _, cmd := m.Update(tickMsg{}); cmd == nil {
		t.Error("a tick does not refresh")
	}
}

// Keys read together arrive as one message with several runes; each one
// counts, and a paste counts for none.
func TestKeysReadTogether(t *testing.T) {
	src := &fakeSource{}
	m := newTestModel(src)
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("ry")})
	if !m.reloading || cmd == nil {
		t.Fatalf(`"ry" did not start a reload`)
	}
	m = newTestModel(src)
	if _, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("rq"), Paste: true}); cmd != nil || m.confirming {
		t.Error("a paste acted as keys")
	}
	_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("+q")})
	if _, quit := cmd().(tea.QuitMsg); !quit {
		t.Error(`"+q" did not quit`)
	}
}
