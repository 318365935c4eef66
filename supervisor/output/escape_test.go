package output

import "testing"

// Sanitize leaves nothing a terminal would act on: what drover status
// prints of a worker cannot clear the screen, set the title or start a
// sequence; AppendEscaped keeps ESC for a worker's colours in dev mode.
func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"warmed up · 3 ms", "warmed up · 3 ms"},
		{"\x1b[2Jcleared", `\x1b[2Jcleared`},
		{"\x1b]0;pwned\x07title", `\x1b]0;pwned\x07title`},
		{"\u009b2Jc1 csi", `\u009b2Jc1 csi`},
		{"nel\u0085 ok\u00a0", `nel\u0085 ok` + "\u00a0"},
		{"bad \xff\xfe utf8 \xe2\x82", `bad \xff\xfe utf8 \xe2\x82`},
		{"tab\there\nline\rcr\x7fdel\x00", `tab\x09here\x0aline\x0dcr\x7fdel\x00`},
		{"", ""},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := string(AppendEscaped(nil, []byte("\x1b[31mred\x1b[0m\tx\x07"))); got != "\x1b[31mred\x1b[0m\tx\\x07" {
		t.Errorf("AppendEscaped dropped the colours or the tab: %q", got)
	}
}
