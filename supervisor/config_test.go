package supervisor

import (
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
