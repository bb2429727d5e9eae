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
