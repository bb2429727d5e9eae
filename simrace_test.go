//go:build race

package kassa

// simDefaultHistories is how many histories the lifecycle simulation runs
// by default under the race detector, which slows it eightfold: its
// histories are single-threaded, so the detector has little to find in
// them, and CI runs the full thousand in a step of its own without it.
const simDefaultHistories = 250
