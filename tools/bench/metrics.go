package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// sample is one line of Prometheus' text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is a scrape of a /metrics endpoint.
type metricSet []sample

// parseMetrics reads Prometheus' text exposition format: name, optional
// {labels} and a value per line. Comments are skipped; label values with
// escaped quotes are not expected in the metrics the harness reads, and a
// line it cannot read is an error.
func parseMetrics(r io.Reader) (metricSet, error) {
	var set metricSet
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var sm sample
		head, value, ok := cutLast(line, ' ')
		if !ok {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		sm.value = v
		name, labels, hasLabels := strings.Cut(head, "{")
		sm.name = name
		if hasLabels {
			sm.labels = map[string]string{}
			for _, pair := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				if k, v, ok := strings.Cut(pair, "="); ok {
					sm.labels[k] = strings.Trim(v, `"`)
				}
			}
		}
		set = append(set, sm)
	}
	return set, s.Err()
}

// cutLast cuts s around the last sep.
func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// sum adds up the samples of the metric name whose labels include the
// given name, value pairs.
func (m metricSet) sum(name string, labels ...string) float64 {
	total := 0.0
next:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// providerCalls counts kassa's calls of a CrystalPAY operation.
func (m metricSet) providerCalls(op string) float64 {
	return m.sum("kassa_provider_calls_total", "provider", "crystalpay", "operation", op)
}

// passes is the count and total seconds of completed reconciler passes.
func (m metricSet) passes() (count, seconds float64) {
	return m.sum("kassa_reconciler_passes_total"), m.sum("kassa_reconciler_pass_duration_seconds_sum")
}
