package caddytest

import (
	"encoding/csv"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCLIOrderPagesAndExport: with a real Caddy holding several orders,
// `caddy kassa orders --limit 2` pages newest first to the end by the
// cursor each page names, and `caddy kassa export` writes the orders of a
// date range (in the app's time_zone) oldest first as CSV.
func TestCLIOrderPagesAndExport(t *testing.T) {
	procBinary(t) // build first: the build must not eat the shop's time
	shopWith(t, storageDir(t), "poll_interval 100ms", "poll_interval 100ms\n\t\ttime_zone Europe/Moscow")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().In(msk) // before the orders: the day they are made in begins at or after it

	var created []string // oldest first
	for range 5 {
		r := postJSON(t, "/card", `{"items":[{"sku":"tea","qty":1}],"phone":"+79991234567"}`)
		id, _ := r.json(t)["order_id"].(string)
		if r.status != http.StatusCreated || id == "" {
			t.Fatalf("checkout: %d %s", r.status, r.body)
		}
		created = append(created, id)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": created[1]}, nil)
	waitFor(t, "the order paid", func() bool { return orderStatus(t, created[1])["state"] == "paid" })

	next := regexp.MustCompile(`^kassa: more orders follow: the next page is --before (\S+)\n$`)
	row := regexp.MustCompile(`(?m)^(\S{22}) +(pending|paid) `)
	var paged []string
	args := []string{"orders", "--limit", "2"}
	for pages := 1; ; pages++ {
		r := runKassaCLI(t, args...)
		if r.exit != 0 {
			t.Fatalf("page %d: exit %d\n%s%s", pages, r.exit, r.stdout, r.stderr)
		}
		for _, m := range row.FindAllStringSubmatch(r.stdout, -1) {
			paged = append(paged, m[1])
		}
		m := next.FindStringSubmatch(r.stderr)
		if m == nil {
			if r.stderr != "" || pages != 3 {
				t.Errorf("page %d ends the listing with stderr %q", pages, r.stderr)
			}
			break
		}
		if pages == 3 {
			t.Fatalf("page 3 of 5 orders by 2 names a next page: %s", r.stderr)
		}
		args = []string{"orders", "--limit", "2", "--before", m[1]}
	}
	newest := slices.Clone(created)
	slices.Reverse(newest)
	if !slices.Equal(paged, newest) {
		t.Errorf("paging by 2 listed\n%v\nwant newest first\n%v", paged, newest)
	}

	r := runKassaCLI(t, "export", "--from", today.Format(time.DateOnly), "--to", today.AddDate(0, 0, 2).Format(time.DateOnly))
	if r.exit != 0 || !strings.HasPrefix(r.stderr, "kassa: exported 5 orders in ") {
		t.Fatalf("export: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	records, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(records) != 6 || records[0][0] != "order_id" {
		t.Fatalf("export: %v\n%s", err, r.stdout)
	}
	var exported []string
	for _, rec := range records[1:] {
		exported = append(exported, rec[0])
		if !strings.HasSuffix(rec[1], "+03:00") || strings.Contains(strings.Join(rec, ","), "79991234567") {
			t.Errorf("export row %v: want Moscow times and no contacts", rec)
		}
	}
	if !slices.Equal(exported, created) {
		t.Errorf("export listed\n%v\nwant oldest first\n%v", exported, created)
	}
	// A range before the orders holds none.
	r = runKassaCLI(t, "export", "--format", "jsonl", "--to", today.Format(time.DateOnly))
	if r.exit != 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "kassa: exported 0 orders") {
		t.Errorf("an empty export: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
}
