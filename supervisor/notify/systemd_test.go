package notify

import (
	"math"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// EXTEND_TIMEOUT_USEC is always a count systemd can read, from 0 to a day
// (maxExtend), whatever duration a caller passes: a huge one, or one that
// already overflowed to a negative number.
func TestExtendTimeoutNeverOverflows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sd := NewSystemd(path)
	usec := regexp.MustCompile(`(?m)^EXTEND_TIMEOUT_USEC=(.*)$`)
	buf := make([]byte, 4096)
	for _, tc := range []struct {
		d    time.Duration
		want time.Duration
	}{
		{30 * time.Second, 30 * time.Second},
		{math.MaxInt64, maxExtend},
		{math.MaxInt64 - time.Second, maxExtend},
		{-time.Second, 0},
		{math.MinInt64, 0},
	} {
		for name, send := range map[string]func(time.Duration) error{"ExtendTimeout": sd.ExtendTimeout, "Stopping": sd.Stopping} {
			if err := send(tc.d); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			m := usec.FindStringSubmatch(string(buf[:n]))
			if m == nil {
				t.Fatalf("%s(%v) sent no EXTEND_TIMEOUT_USEC: %q", name, tc.d, buf[:n])
			}
			got, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil || got != uint64(tc.want.Microseconds()) {
				t.Errorf("%s(%v) sent EXTEND_TIMEOUT_USEC=%s, want %d", name, tc.d, m[1], tc.want.Microseconds())
			}
		}
	}
}
