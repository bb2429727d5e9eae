package kassa

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// clientLimit bounds how many orders one client address may create per
// window, so that a script cannot fill the storage with unpaid orders. It
// is per instance: in a cluster each instance counts its own.
type clientLimit struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	made map[string][]time.Time
	// swept is when clients were last forgotten.
	swept time.Time
}

// maxLimitedClients is the size past which clients with no order left in
// the window are forgotten: at most once per window, so that a shop with
// more buyers than that in one window does not scan them all on every
// checkout.
const maxLimitedClients = 10000

// allow records an order by client at now, unless the client already made
// max orders within the window.
func (l *clientLimit) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.made == nil {
		l.made = make(map[string][]time.Time)
	}
	if len(l.made) >= maxLimitedClients && now.Sub(l.swept) >= l.window {
		l.swept = now
		for c, times := range l.made {
			if len(recent(times, now, l.window)) == 0 {
				delete(l.made, c)
			}
		}
	}
	times := recent(l.made[client], now, l.window)
	if len(times) >= l.max {
		l.made[client] = times
		return false
	}
	l.made[client] = append(times, now)
	return true
}

// recent is the times within the window before now (times are in order).
func recent(times []time.Time, now time.Time, window time.Duration) []time.Time {
	for i, t := range times {
		if now.Sub(t) < window {
			return times[i:]
		}
	}
	return times[:0]
}

// clientAddress is the request's client IP as Caddy determined it, which
// respects the server's trusted_proxies.
func clientAddress(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
