package kassa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCloseWaitsForCallsThenClosesConnections: a client closed while a
// call is in flight keeps that call working and closes its connection when
// it ends, so a config reload leaves no connection behind; a call made
// after close works and leaves none either.
func TestCloseWaitsForCallsThenClosesConnections(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c, err := NewProviderClient("test", srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A call, whose connection stays open, then a slow one on it.
	if _, _, err := c.Call(ctx, "fast", http.MethodGet, c.URL("fast", nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, reply, err := c.Call(ctx, "slow", http.MethodGet, c.URL("slow", nil), nil, nil)
		if err == nil && string(reply) != `{"ok":true}` {
			t.Errorf("slow call's reply: %s", reply)
		}
		done <- err
	}()
	<-arrived
	c.Close()
	if n := c.conns.open(); n == 0 {
		t.Fatal("close dropped the connection of a call in flight")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the call in flight at close: %v", err)
	}
	if n := c.conns.open(); n != 0 {
		t.Errorf("%d connections open after the last call ended, want 0", n)
	}

	if _, _, err := c.Call(ctx, "fast", http.MethodGet, c.URL("fast", nil), nil, nil); err != nil {
		t.Fatalf("a call after close: %v", err)
	}
	if n := c.conns.open(); n != 0 {
		t.Errorf("%d connections open after a call made after close, want 0", n)
	}
}
