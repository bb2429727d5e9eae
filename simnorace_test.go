//go:build !race

package kassa

// simDefaultHistories is how many histories the lifecycle simulation runs
// by default.
const simDefaultHistories = 1000
