package top

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/droverd/drover/supervisor/control"
	"github.com/droverd/drover/supervisor/output"
)

var (
	titleStyle  = lipgloss.NewStyle().Bold(true)
	bannerStyle = lipgloss.NewStyle().Bold(true).Reverse(true)
	errorStyle  = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("9"))
	headStyle   = lipgloss.NewStyle().Underline(true)
	faintStyle  = lipgloss.NewStyle().Faint(true)
)

// noLogs is shown for a Source without logs.
const noLogs = "(logs: name the unit, drover top UNIT, to read them from the journal)"

// clean escapes what came from workers or the unit: a STATUS= line, a
// failed reload's reason, must not clear the screen or retitle the
// terminal.
var clean = output.Sanitize

// View draws the screen: header, workers, logs to fill the height, and
// the keys at the bottom.
func (m *Model) View() string {
	lines := m.header()
	lines = append(lines, "", headStyle.Render(row("SLOT", "PID", "GEN", "STATE", "UPTIME", "CPU%", "last "+fmt.Sprint(historyLen), "RSS", "RESTARTS", "RECYCLES", "STATUS")))
	lines = append(lines, m.rows()...)
	lines = append(lines, "", faintStyle.Render("recent logs"))
	room := len(m.logs)
	if m.height > 0 {
		room = max(0, m.height-len(lines)-1)
	}
	lines = append(lines, m.logView(room)...)
	lines = append(lines, m.footer())
	if m.width > 0 {
		for i, l := range lines {
			lines[i] = lipgloss.NewStyle().MaxWidth(m.width).Render(l)
		}
	}
	return strings.Join(lines, "\n")
}

// header is the unit's and drover's state, drover's status line (a
// reload's stage, prominent while one runs), and what went wrong.
func (m *Model) header() []string {
	d := m.snap.Drover
	lines := []string{titleStyle.Render(m.title())}
	if d != nil {
		lines = append(lines, fmt.Sprintf("drover %s · generation %d · %d/%d ready · %s · %s · %s",
			clean(d.State), d.Generation, d.Ready, d.Workers, count(d.Restarts, "restart"), count(d.Recycles, "recycle"), count(d.Reloads, "reload")))
	}
	lines = append(lines, m.statusLine())
	if d != nil && d.LastReloadError != "" {
		lines = append(lines, errorStyle.Render("last reload failed: "+clean(d.LastReloadError)))
	}
	if m.err != nil {
		e := "cannot read drover: " + clean(m.err.Error())
		if !m.fetched.IsZero() {
			e += " (workers as of " + m.fetched.Format(time.TimeOnly) + ")"
		}
		lines = append(lines, errorStyle.Render(e))
	}
	if d != nil {
		lines = append(lines, fmt.Sprintf("sockets: %s · command: %s", clean(strings.Join(d.Sockets, " ")), clean(strings.Join(d.Command, " "))))
	}
	return lines
}

// title names the unit (or the drover, found by its socket) and the time.
func (m *Model) title() string {
	clock := m.now().Format(time.TimeOnly)
	if u := m.snap.Unit; u != nil {
		t := fmt.Sprintf("%s  %s (%s) · main pid %d · %d restarts by systemd", clean(u.Name), clean(u.ActiveState), clean(u.SubState), u.MainPID, u.NRestarts)
		return t + " · " + clock
	}
	t := "drover"
	if d := m.snap.Drover; d != nil {
		t += fmt.Sprintf(" pid %d", d.Pid)
	}
	return t + " at " + clean(m.snap.Control) + " · " + clock
}

// statusLine is drover's status line, which names a reload's stage; it
// stands out while a reload or a rollback runs.
func (m *Model) statusLine() string {
	d := m.snap.Drover
	text := ""
	switch {
	case d != nil:
		text = d.StatusText
	case m.snap.Unit != nil:
		text = m.snap.Unit.StatusText
	}
	if d != nil && (d.State == "reloading" || d.State == "rolling-back") {
		return bannerStyle.Render(" "+strings.ToUpper(clean(d.State))+" ") + " " + bannerStyle.Render(clean(text))
	}
	return "status: " + clean(text)
}

// row lays out one table row; the STATUS column takes what is left.
func row(slot, pid, gen, state, up, cpu, spark, rss, restarts, recycles, status string) string {
	return fmt.Sprintf("%-4s %-8s %-3s %-11s %-9s %6s %-*s %7s %8s %8s %s",
		slot, pid, gen, state, up, cpu, historyLen, spark, rss, restarts, recycles, status)
}

func (m *Model) rows() []string {
	d := m.snap.Drover
	if d == nil {
		return []string{faintStyle.Render("(no answer from drover yet)")}
	}
	lines := make([]string, 0, len(d.Processes))
	for _, p := range d.Processes {
		lines = append(lines, m.workerRow(p))
	}
	return lines
}

func (m *Model) workerRow(p control.WorkerStatus) string {
	slot := fmt.Sprint(p.Slot)
	restarts, recycles := fmt.Sprint(p.Restarts), fmt.Sprint(p.Recycles)
	if p.Pid == 0 {
		return row(slot, "-", "-", clean(p.State), "-", "-", "", "-", restarts, recycles, clean(p.Status))
	}
	up := "-"
	if !p.Started.IsZero() {
		up = m.now().Sub(p.Started).Round(time.Second).String()
	}
	return row(slot, fmt.Sprint(p.Pid), fmt.Sprint(p.Generation), clean(p.State), up,
		fmt.Sprintf("%.1f", p.CPUPercent), m.cpu[p.Pid].sparkline(), HumanBytes(p.RSSBytes), restarts, recycles, clean(p.Status))
}

// logView is the last n log lines, or why there are none.
func (m *Model) logView(n int) []string {
	var lines []string
	switch {
	case errors.Is(m.logsErr, ErrNoLogs):
		lines = []string{faintStyle.Render(noLogs)}
	case m.logsErr != nil:
		lines = []string{faintStyle.Render("(logs: " + clean(m.logsErr.Error()) + ")")}
	case len(m.logs) == 0:
		lines = []string{faintStyle.Render("(no log lines yet)")}
	default:
		for _, l := range m.logs[max(0, len(m.logs)-n):] {
			lines = append(lines, clean(l))
		}
	}
	if len(lines) > n {
		lines = lines[:n]
	}
	for len(lines) < n && m.height > 0 {
		lines = append(lines, "") // keeps the keys on the last line
	}
	return lines
}

// footer is the keys, the last action's result, or the reload question.
func (m *Model) footer() string {
	if m.confirming {
		return bannerStyle.Render(" reload? New workers start from the program now on disk, a batch at a time. [y/N] ")
	}
	keys := faintStyle.Render("q quit · r reload · + add a worker · - remove one")
	if m.message == "" {
		return keys
	}
	return keys + "   " + titleStyle.Render(clean(m.message))
}

// count is "1 reload", "2 reloads".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// HumanBytes writes a size as ps and top do: 5.7M, 1.2G.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprint(n)
}
