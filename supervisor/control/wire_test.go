package control

import "testing"

func FuzzDecodeControlRequest(f *testing.F) {
	for _, seed := range []string{`{"command":"reload"}`, `{"command":""}`, `{}`, `{"command":"reload","x":1}`, "\x00", `{"command":`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err == nil && req.Command != "reload" && req.Command != "status" && req.Command != "scale" && req.Command != "upgrade" {
			t.Fatalf("accepted unknown command %q", req.Command)
		}
	})
}
