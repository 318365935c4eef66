package testbin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load sends requests to 127.0.0.1 until End: one client with keep-alive
// connections, one with a new connection per request. It counts failures
// and never retries. A run is bounded in requests and time even if a test
// forgets to end it.
type Load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

// Load's bounds.
const (
	loadMaxRequests = 200000
	loadMaxDuration = 2 * time.Minute
)

// StartLoad starts both clients against addr.
func StartLoad(addr string) *Load {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	l := &Load{stop: cancel}
	for _, keepAlive := range []bool{true, false} {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		l.wg.Go(func() {
			for ctx.Err() == nil && l.ok.Load()+l.failed.Load() < loadMaxRequests {
				l.record(request(client, addr))
			}
		})
	}
	return l
}

// request sends one POST, not GET: Go's client silently retries a GET that
// failed on a reused connection, which would hide exactly the failures
// Load counts.
func request(client *http.Client, addr string) error {
	resp, err := client.Post("http://"+addr+"/", "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (l *Load) record(err error) {
	if err == nil {
		l.ok.Add(1)
		return
	}
	l.failed.Add(1)
	l.mu.Lock()
	l.errs = append(l.errs, err.Error())
	l.mu.Unlock()
}

// End stops the clients, logs the counts and fails the test for any
// failed request, or when none was answered.
func (l *Load) End(t testing.TB) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	t.Logf("load: %d requests answered, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d failed requests, first: %v", n, l.errs[:min(5, len(l.errs))])
	}
	if l.ok.Load() == 0 {
		t.Error("no request answered")
	}
}
