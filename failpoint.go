//go:build !kassa_failpoints

package kassa

// failpoint marks a step of checkout or of the receipt flow where a crash
// must lose nothing and double nothing. In a normal build it does nothing;
// a build with the kassa_failpoints tag kills the process there on demand
// (failpoint_kill.go), so that tests crash Caddy at each step.
func failpoint(string) {}
