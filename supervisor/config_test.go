package supervisor

import (
	"errors"
	"math"
	"testing"
	"time"
)

// A library user's timeouts near the largest duration reach systemd as the
// longest extension it is sent (a day), never as an overflowed, negative
// EXTEND_TIMEOUT_USEC after drover adds its margin.
func TestHugeTimeoutsDoNotOverflow(t *testing.T) {
	cfg, reports := testConfig(t, 1, "report")
	cfg.ReadyTimeout = math.MaxInt64
	cfg.StopTimeout = math.MaxInt64 - time.Second
	h := start(t, cfg, reports)
	day := "EXTEND_TIMEOUT_USEC=86400000000"
	first := h.sd.waitFor(t, "EXTEND_TIMEOUT_USEC=*")
	if !hasLine(first, day) {
		t.Errorf("start extension %q, want %s", first, day)
	}
	h.sd.waitFor(t, "READY=1")
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	if stopping := h.sd.waitFor(t, "STOPPING=1"); !hasLine(stopping, day) {
		t.Errorf("stop extension %q, want %s", stopping, day)
	}
}

func TestAddSaturated(t *testing.T) {
	for _, tc := range []struct{ d, margin, want time.Duration }{
		{time.Second, 5 * time.Second, 6 * time.Second},
		{math.MaxInt64, 5 * time.Second, math.MaxInt64},
		{math.MaxInt64 - time.Second, 10 * time.Second, math.MaxInt64},
		{math.MaxInt64 - 10*time.Second, 10 * time.Second, math.MaxInt64},
	} {
		if got := addSaturated(tc.d, tc.margin); got != tc.want {
			t.Errorf("addSaturated(%v, %v) = %v, want %v", tc.d, tc.margin, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512M": 512 << 20, "1.5G": 3 << 29, "1048576": 1 << 20, "100k": 100 << 10, "2GiB": 2 << 30, "1T": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1M", "lots", "1X", "M", "1e30G"} {
		if _, err := ParseSize(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseSize(%q) = %v, want a usage error", bad, err)
		}
	}
	for n, want := range map[int64]string{512: "512", 100 << 10: "100K", 530 << 20: "530M", 3 << 29: "1.5G", 207 << 20: "207M"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
