package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// shop is a running shop Caddy and the harness's way to it.
type shop struct {
	*caddyProcess
	provider *caddyProcess // the sandbox
	base     string        // the site's base URL
	client   *http.Client
}

// createOrders makes n pending orders through the checkout, as a JSON
// client, and returns their ids.
func (s *shop) createOrders(n int) ([]string, error) {
	ids := make([]string, 0, n)
	for range n {
		req, err := http.NewRequest(http.MethodPost, s.base+checkoutPath, strings.NewReader(checkoutForm))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, err
		}
		var created struct {
			OrderID string `json:"order_id"`
			State   string `json:"state"`
		}
		err = json.NewDecoder(resp.Body).Decode(&created)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || created.State != "pending" {
			return nil, fmt.Errorf("creating an order: %s, %+v, %v", resp.Status, created, err)
		}
		ids = append(ids, created.OrderID)
	}
	return ids, nil
}

// load runs a load against the shop and adds to its result the CPU time
// the shop, and the shop, the sandbox and the harness together, used
// meanwhile.
func (s *shop) load(run func() loadResult) (loadResult, error) {
	shop0, all0, err := s.cpuTimes()
	if err != nil {
		return loadResult{}, err
	}
	res := run()
	shop1, all1, err := s.cpuTimes()
	res.cpu, res.allCPU = shop1-shop0, all1-all0
	return res, err
}

// harnessLoad runs a load the harness makes on its own, such as storage
// writes, and adds to its result the CPU time of the shop, the sandbox and
// the harness together (the shop's own stays unmeasured: it idles).
func (s *shop) harnessLoad(run func() loadResult) (loadResult, error) {
	res, err := s.load(run)
	res.cpu = 0
	return res, err
}

// cpuTimes is the CPU time used so far by the shop, and by the shop, the
// sandbox and the harness together.
func (s *shop) cpuTimes() (shop, all time.Duration, err error) {
	if shop, err = s.cpuTime(); err != nil {
		return 0, 0, err
	}
	provider, err := s.provider.cpuTime()
	if err != nil {
		return 0, 0, err
	}
	var self syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return 0, 0, err
	}
	harness := time.Duration(self.Utime.Nano() + self.Stime.Nano())
	return shop, shop + provider + harness, nil
}

// pollStatuses has concurrency workers poll the status of every one of ids
// in turn for d.
func (s *shop) pollStatuses(ctx context.Context, ids []string, concurrency int, d time.Duration) loadResult {
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = s.base + checkoutPath + "?order=" + id
	}
	return drive(ctx, concurrency, d, func(w, i int) error {
		return get(s.client, urls[(w+i)%len(urls)], http.StatusOK)
	})
}

// passTime waits until the reconciler completes n passes after since (a
// scrape of the shop's metrics) and returns the mean time of the passes
// completed since then.
func (s *shop) passTime(ctx context.Context, since metricSet, n int) (time.Duration, error) {
	count0, sum0 := since.passes()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := s.metrics(ctx)
		if err != nil {
			return 0, err
		}
		if count, sum := m.passes(); count >= count0+float64(n) {
			return time.Duration((sum - sum0) / (count - count0) * float64(time.Second)), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not complete %d reconciler passes in 30 s", s.name, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
