package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one request of the load generator: a stalled server
// shows up as an error and a max latency, never as a hung run.
const requestTimeout = 5 * time.Second

// request is the HTTP request a load run sends over and over.
type request struct {
	method, url string
	token       string // sent as Authorization: Bearer, when not empty
	body        []byte // JSON, when not nil
	want        int    // the status that counts as success
}

// newClient returns an HTTP client for up to conns concurrent requests to
// one loopback server, keeping its connections alive between runs so that
// every run after the warm-up measures requests, not connection set-up.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		},
	}
}

// do sends req once and reads the whole answer; it returns an error when the
// status is not req.want.
func do(ctx context.Context, c *http.Client, req request) error {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return err
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	rsp, err := c.Do(r)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if err != nil {
		return err
	}
	if rsp.StatusCode != req.want {
		return fmt.Errorf("%s %s: %s %.200s", req.method, pathOf(req.url), rsp.Status, b)
	}
	return nil
}

func pathOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Path
	}
	return u
}

// load calls fn from conc goroutines, each call after the previous one in
// its goroutine returned, for d or until max calls have started (0: no
// bound), or until ctx ends; and records each call's latency and outcome.
// Calls in flight at the end of d finish and count (a slow one is what the
// run is for); those cut off by ctx do not.
func load(ctx context.Context, conc int, d time.Duration, max int64, fn func(context.Context) error) result {
	var (
		started  atomic.Int64
		mu       sync.Mutex
		total    = result{conc: conc}
		wg       sync.WaitGroup
		deadline = time.Now().Add(d)
	)
	began := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine result
			mine.lat = make([]time.Duration, 0, 1024)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if max > 0 && started.Add(1) > max {
					break
				}
				t0 := time.Now()
				err := fn(ctx)
				if err != nil && ctx.Err() != nil {
					break // interrupted: not the server's fault
				}
				mine.lat = append(mine.lat, time.Since(t0))
				if err != nil {
					mine.errs++
					if mine.firstErr == "" {
						mine.firstErr = err.Error()
					}
				} else {
					mine.ok++
				}
			}
			mu.Lock()
			total.add(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(began)
	return total
}

// loadHTTP is load with req as the call.
func loadHTTP(ctx context.Context, c *http.Client, req request, conc int, d time.Duration, max int64) result {
	return load(ctx, conc, d, max, func(ctx context.Context) error { return do(ctx, c, req) })
}
