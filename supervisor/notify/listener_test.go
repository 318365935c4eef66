package notify

import (
	"strings"
	"testing"
)

func FuzzParseNotify(f *testing.F) {
	for _, seed := range []string{"READY=1", "READY=1\nSTATUS=ok", "=x\n\n", "STATUS=a=b", "\x00READY=1"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range Parse(b) {
			if k == "" || strings.Contains(k, "\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}
