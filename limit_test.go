package kassa

import (
	"fmt"
	"testing"
	"time"
)

func TestClientLimit(t *testing.T) {
	l := &clientLimit{max: 2, window: time.Minute}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if !l.allow("198.51.100.7", start) || !l.allow("198.51.100.7", start.Add(time.Second)) {
		t.Fatal("the first two orders were refused")
	}
	if l.allow("198.51.100.7", start.Add(2*time.Second)) {
		t.Error("a third order within the window was allowed")
	}
	if !l.allow("203.0.113.9", start.Add(2*time.Second)) {
		t.Error("another client was refused")
	}
	if !l.allow("198.51.100.7", start.Add(time.Minute)) {
		t.Error("an order after the first left the window was refused")
	}
	if l.allow("198.51.100.7", start.Add(time.Minute+500*time.Millisecond)) {
		t.Error("the window slid too far")
	}
}

func TestClientLimitForgetsIdleClients(t *testing.T) {
	l := &clientLimit{max: 1, window: time.Second}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range maxLimitedClients * 2 {
		l.allow(fmt.Sprint("client-", i), start.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(l.made); n > maxLimitedClients+1000 {
		t.Errorf("%d clients remembered", n)
	}
}

// TestClientLimitSweepsOncePerWindow: past maxLimitedClients buyers who
// all ordered within the window, a checkout does not scan them all again
// until the window has passed.
func TestClientLimitSweepsOncePerWindow(t *testing.T) {
	l := &clientLimit{max: 1, window: time.Minute}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range maxLimitedClients + 1 {
		l.allow(fmt.Sprint("client-", i), start)
	}
	swept := l.swept
	if !swept.Equal(start) {
		t.Fatalf("no sweep at %d clients: last sweep %v", len(l.made), swept)
	}
	l.allow("late", start.Add(30*time.Second))
	if !l.swept.Equal(swept) {
		t.Errorf("swept again %v after the last sweep, within the window", l.swept.Sub(swept))
	}
	l.allow("later", start.Add(time.Minute))
	if !l.swept.Equal(start.Add(time.Minute)) || len(l.made) != 2 {
		t.Errorf("a window later: last sweep %v, %d clients; want a sweep leaving 2", l.swept, len(l.made))
	}
}
