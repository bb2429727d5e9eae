package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// benchRun is a run of the root package's Go benchmarks.
type benchRun struct {
	command string
	results []benchResult
}

// benchResult is one benchmark's line: its name (without the -GOMAXPROCS
// suffix), its iterations and its measurements (ns/op, B/op, allocs/op and
// any the benchmark reports itself).
type benchResult struct {
	name       string
	iterations int64
	values     []benchValue
}

// benchValue is one measurement of a benchmark.
type benchValue struct {
	value float64
	unit  string
}

// goBenchmarks runs the root package's benchmarks, with -benchmem, in root.
func goBenchmarks(ctx context.Context, root, benchtime string) (benchRun, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "."}
	run := benchRun{command: "go " + strings.Join(args, " ")}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return run, fmt.Errorf("%s: %v\n%s", run.command, err, out)
	}
	run.results, err = parseBenchmarks(out)
	return run, err
}

// parseBenchmarks reads the benchmark lines of go test's output.
func parseBenchmarks(out []byte) ([]benchResult, error) {
	var results []benchResult
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue // a benchmark's log line
		}
		name := fields[0]
		if base, procs, ok := cutLast(name, '-'); ok {
			if _, err := strconv.Atoi(procs); err == nil {
				name = base
			}
		}
		r := benchResult{name: name, iterations: n}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %v", s.Text(), err)
			}
			r.values = append(r.values, benchValue{v, fields[i+1]})
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("go test printed no benchmark:\n%s", out)
	}
	return results, s.Err()
}

// metric is the value in unit of the named benchmark.
func (b benchRun) metric(name, unit string) (float64, error) {
	for _, r := range b.results {
		if r.name != name {
			continue
		}
		if v, ok := r.value(unit); ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s reported no %s", name, unit)
}

// value is the measurement in unit.
func (r benchResult) value(unit string) (float64, bool) {
	for _, v := range r.values {
		if v.unit == unit {
			return v.value, true
		}
	}
	return 0, false
}
