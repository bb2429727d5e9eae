package kassa

import (
	"context"
	"net"
	"sync"
)

// connPool tracks the connections of one provider client's transport and
// the calls in flight on them, so that closing the client closes every
// connection as soon as no call uses it. Closing only the idle connections
// is not enough on a config reload: Caddy cleans up the old config while
// its last requests still run, and the connections those return to the
// pool afterwards would stay open, each with two goroutines, until the
// provider drops them.
type connPool struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	busy    int  // calls in flight
	closing bool // the client is closed: drop connections once none is busy
}

func newConnPool() *connPool {
	return &connPool{conns: make(map[net.Conn]struct{})}
}

// dialer wraps a transport's DialContext so that the pool knows each
// connection until it is closed.
func (p *connPool) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, pool: p}
		p.mu.Lock()
		p.conns[tc] = struct{}{}
		p.mu.Unlock()
		return tc, nil
	}
}

// begin counts a call in flight; end, called once for each begin, counts it
// done, and closes the connections if the client is closed and no other
// call is in flight.
func (p *connPool) begin() {
	p.mu.Lock()
	p.busy++
	p.mu.Unlock()
}

func (p *connPool) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy--
	if p.closing && p.busy == 0 {
		p.closeAllLocked()
	}
}

// close closes every connection now if no call is in flight, or else when
// the last one ends. A call made after close still works, on a connection
// that is closed when it ends.
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closing = true
	if p.busy == 0 {
		p.closeAllLocked()
	}
}

func (p *connPool) closeAllLocked() {
	for c := range p.conns {
		c.(*trackedConn).Conn.Close()
		delete(p.conns, c)
	}
}

// open reports how many connections the pool holds.
func (p *connPool) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// trackedConn leaves its pool when it is closed.
type trackedConn struct {
	net.Conn
	pool *connPool
}

func (c *trackedConn) Close() error {
	c.pool.mu.Lock()
	delete(c.pool.conns, c)
	c.pool.mu.Unlock()
	return c.Conn.Close()
}
