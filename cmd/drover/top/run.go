package top

import (
	"errors"
	"fmt"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"
)

// ErrNoTerminal: drover top draws a full screen and reads keys, which
// makes no sense on a pipe or a file; drover status is the command for
// those.
var ErrNoTerminal = errors.New("needs a terminal (try drover status)")

// Run shows the screen on the terminal out, reading keys from in, until
// the operator quits. It refuses to start, with ErrNoTerminal, unless both
// are terminals, so a redirected drover top fails plainly instead of
// writing escape sequences into a file.
func Run(src Source, in, out *os.File, opts Options) error {
	if !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return ErrNoTerminal
	}
	p := tea.NewProgram(New(src, opts), tea.WithAltScreen(), tea.WithInput(in), tea.WithOutput(out))
	if _, err := p.Run(); err != nil {
		return fmt.Errorf("run the screen: %w", err)
	}
	return nil
}
