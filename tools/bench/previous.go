package main

import (
	"regexp"
	"slices"
	"strings"
)

// previousRun is what the report at -out held before this run overwrote
// it: when its run began, and the values of its figures by row label.
type previousRun struct {
	date   string
	values map[string]string
}

// previousSections are the report's sections whose tables hold figures
// shown beside this run's.
var previousSections = []string{"## Figures", scaleHeading}

// runDate is the report's line that says when its run began.
var runDate = regexp.MustCompile(`(?m)^on (\d{4}-\d\d-\d\d \d\d:\d\d [A-Z]+)\.$`)

// parsePrevious reads a report: its date, and the first two cells (label
// and value) of every table row of previousSections, headers aside.
func parsePrevious(report string) previousRun {
	p := previousRun{values: map[string]string{}}
	if m := runDate.FindStringSubmatch(report); m != nil {
		p.date = m[1]
	}
	section := ""
	lines := strings.Split(report, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "## ") {
			section = strings.TrimSpace(line)
			continue
		}
		if !slices.Contains(previousSections, section) || !strings.HasPrefix(line, "|") ||
			separatorRow(line) || (i+1 < len(lines) && separatorRow(lines[i+1])) {
			continue
		}
		cells := tableCells(line)
		if len(cells) < 2 || cells[0] == "" {
			continue
		}
		if _, seen := p.values[cells[0]]; !seen {
			p.values[cells[0]] = cells[1]
		}
	}
	return p
}

// value is the previous run's value of the row label, or "—".
func (p previousRun) value(label string) string {
	if v := p.values[label]; v != "" {
		return v
	}
	return "—"
}

// separatorRow reports whether a table line is the one under its header,
// such as |---|---:|.
func separatorRow(line string) bool {
	return strings.Trim(line, "|-: ") == "" && strings.Contains(line, "-")
}

// tableCells are the cells of a table row, trimmed.
func tableCells(line string) []string {
	cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}
