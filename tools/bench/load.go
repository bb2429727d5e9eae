package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is the harness's HTTP client: keep-alive, one idle connection
// per worker, no redirects followed (a checkout's 303 is its answer).
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost: concurrency,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// loadResult is what a fixed number of workers did in a fixed time.
type loadResult struct {
	requests, failures int64
	elapsed            time.Duration
	firstFailure       string
	// cpu is the CPU time the shop used meanwhile, and allCPU that of
	// the shop, the sandbox and the harness together, when measured.
	cpu, allCPU time.Duration
}

// plus is l and m together, as if one load: their requests, failures,
// time and CPU time added up.
func (l loadResult) plus(m loadResult) loadResult {
	return loadResult{
		requests: l.requests + m.requests, failures: l.failures + m.failures,
		elapsed: l.elapsed + m.elapsed, firstFailure: cmp.Or(l.firstFailure, m.firstFailure),
		cpu: l.cpu + m.cpu, allCPU: l.allCPU + m.allCPU,
	}
}

// rate is successful requests per second.
func (l loadResult) rate() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.requests) / l.elapsed.Seconds()
}

// cpuPerRequest is the shop's CPU time per successful request.
func (l loadResult) cpuPerRequest() time.Duration {
	if l.requests == 0 {
		return 0
	}
	return l.cpu / time.Duration(l.requests)
}

// allCPUPerRequest is the CPU time of the shop, the sandbox and the
// harness per successful request.
func (l loadResult) allCPUPerRequest() time.Duration {
	if l.requests == 0 {
		return 0
	}
	return l.allCPU / time.Duration(l.requests)
}

// drive runs concurrency workers for d, each calling do in a loop with
// its worker number and its own request count; do returns an error for a
// failed request. A worker finishes the request in hand when time is up.
func drive(ctx context.Context, concurrency int, d time.Duration, do func(worker, i int) error) loadResult {
	var res loadResult
	var failure sync.Once
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := do(w, i); err != nil {
					atomic.AddInt64(&res.failures, 1)
					failure.Do(func() { res.firstFailure = err.Error() })
					continue
				}
				atomic.AddInt64(&res.requests, 1)
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// exchange sends req and reads the whole answer, which must have status
// want.
func exchange(c *http.Client, req *http.Request, want int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s, want %d", req.Method, req.URL.Path, resp.Status, want)
	}
	return nil
}

// get is exchange for a GET of url.
func get(c *http.Client, url string, want int) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return exchange(c, req, want)
}

// postForm is exchange for a form post of body to url.
func postForm(c *http.Client, url, body string, want int) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return exchange(c, req, want)
}
