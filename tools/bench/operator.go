package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-kassa/kassa"
	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
)

// The operator page figure: pages of pageLimit orders, timed pageSamples
// times after pageWarmup requests, within pageBudget per page (and at
// least minPageSamples times, for an API slow enough to need it).
const (
	pageLimit      = 20
	pageWarmup     = 5
	pageSamples    = 50
	minPageSamples = 3
	pageBudget     = time.Minute
	// storedOrderDisk is the disk an order stored for the operator
	// figures may take, with room to spare: a record and an index entry,
	// each a file system block or more.
	storedOrderDisk = 16 << 10
)

// pageFigure is the operator's newest-first page, GET /kassa/orders,
// with stored orders in storage.
type pageFigure struct {
	stored   int
	seedTime time.Duration
	// first and second are the times of page 1 and of page 2 (with the
	// cursor page 1 returned), sorted; secondMissing says why page 2 was
	// not measured.
	first, second []time.Duration
	secondMissing string
}

// exportFigure is caddy kassa export of the orders of a range of days.
type exportFigure struct {
	// missing says why the export was not measured (no such command or
	// endpoint yet); the other fields are then zero.
	missing string
	// from and to are the range given, days in the local time zone
	// (the shop's), from inclusive and to exclusive; inRange is the
	// orders created in it.
	from, to string
	inRange  int
	rows     int
	elapsed  time.Duration
	// shopBefore and shopAfter are the shop's memory before and after
	// the export, in a fresh process; cliPeak the CLI's peak RSS.
	shopBefore, shopAfter memory
	cliPeak               int64
}

// complete reports whether the export's rows are the orders of its range.
func (e exportFigure) complete() bool {
	return e.missing == "" && e.rows > 0 && e.rows == e.inRange
}

// year is the time the operator figures' orders are spread over.
const year = 365 * 24 * time.Hour

// history is the operator figures' stored orders: total of them, created
// over the year before end, each in a slot of its own.
type history struct {
	total int
	end   time.Time
	// stride is near total × the golden ratio's fraction and shares no
	// factor with total: i → i × stride mod total visits each slot once,
	// and any first orders of the history are spread over its year.
	stride int64
}

// newHistory is a history of total orders created over the year before end.
func newHistory(total int, end time.Time) history {
	n := int64(total)
	stride := max(int64(float64(n)*0.6180339887), 1)
	for gcd(stride, n) != 1 {
		stride++
	}
	return history{total: total, end: end, stride: stride}
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// created is when order i of the history was created.
func (h history) created(i int) time.Time {
	slot := int64(i) * h.stride % int64(h.total)
	return h.end.Add(-year + time.Duration(slot)*(year/time.Duration(h.total)))
}

// order is order i of the history, in a mix of states like a shop's: 70 %
// paid with their receipts done (one in 20 of them refunded), 25 %
// expired, 3 % cancelled, 2 % failed.
func (h history) order(i int) *kassa.Order {
	created := h.created(i)
	o := sampleOrder(i, kassa.OrderPending)
	o.CreatedAt, o.ExpiresAt = created, created.Add(30*time.Minute)
	switch p := i % 100; {
	case p < 70:
		paid := created.Add(time.Minute)
		o.State, o.PaidAt, o.ClosedAt = kassa.OrderPaid, paid, paid
		o.PaidAmount = decimal.NewNullDecimal(o.Amount)
		o.Receipt = doneReceipt(o.ID, kassa.ReceiptSale, i, paid)
		if p%20 == 0 {
			o.Refund = doneReceipt(o.ID, kassa.ReceiptSaleReturn, i+h.total, paid.Add(24*time.Hour))
		}
	case p < 95:
		o.State, o.ClosedAt = kassa.OrderExpired, o.ExpiresAt
	case p < 98:
		o.State, o.ClosedAt = kassa.OrderCancelled, created.Add(5*time.Minute)
	default:
		o.State, o.ClosedAt, o.Error = kassa.OrderFailed, created, "the provider refused the payment"
		o.Payment = kassa.Payment{}
	}
	return o
}

// doneReceipt is a receipt of type t done at sent, fiscal document n.
func doneReceipt(orderID string, t kassa.ReceiptType, n int, sent time.Time) *kassa.OrderReceipt {
	return &kassa.OrderReceipt{
		OperationID: orderID + "-" + strconv.Itoa(int(t)), Type: t, State: kassa.ReceiptDone, Attempts: 1,
		SentAt: sent, DoneAt: sent.Add(2 * time.Second),
		Fiscal: &kassa.FiscalParams{DocumentNumber: int64(n + 1), DocumentSign: strconv.Itoa(1_000_000_000 + n),
			DocumentTime: sent.Add(time.Second), ReceiptNumber: int64(n%500 + 1), ShiftNumber: int64(n/500 + 1),
			FNNumber: "9999078900012345", RegistrationNumber: "0000000001012345"},
	}
}

// seed stores orders from to to (not included) of h in the file storage
// at dir with OrderStore.Create, with workers.
func (h history) seed(ctx context.Context, dir string, from, to, workers int) error {
	store := kassa.NewOrderStore(&certmagic.FileStorage{Path: dir})
	err := forEach(ctx, from, to, workers, func(i int) error { return store.Create(ctx, h.order(i)) })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("storing the history: %v", err)
	}
	return err
}

// count is how many of the first n orders of h were created in [from, to).
func (h history) count(n int, from, to time.Time) int {
	c := 0
	for i := range n {
		if t := h.created(i); !t.Before(from) && t.Before(to) {
			c++
		}
	}
	return c
}

// measureOperator measures the operator's page with each -page-orders
// count of orders stored, adding orders to one history while one shop
// runs on it, and then, in a fresh shop, the export of the first half of
// its year.
func (f *figures) measureOperator(ctx context.Context, r *scaleRun) error {
	counts := slices.Sorted(slices.Values(f.opts.pageOrders))
	h := newHistory(counts[len(counts)-1], time.Now().UTC().Truncate(time.Second))
	if err := checkDisk(r.dir, int64(h.total)*storedOrderDisk); err != nil {
		return err
	}
	storage := filepath.Join(r.dir, "orders-history")
	defer os.RemoveAll(storage)
	// The shop starts on the empty storage, as a shop's history begins:
	// an index its release builds of the orders stored before it (none
	// here) is complete a moment after it starts.
	s, err := r.scaleShop(ctx, "shop-history", storage, noticeOrderTTL)
	if err != nil {
		return err
	}
	f.scale.pages, err = r.measurePages(ctx, s, h, storage, counts)
	s.stop()
	if err != nil {
		return err
	}

	e := &f.scale.export
	from, to := midnight(h.end.Add(-year)), midnight(h.end.Add(-year/2))
	e.from, e.to = from.Format(time.DateOnly), to.Format(time.DateOnly)
	e.inRange = h.count(h.total, from, to)
	fmt.Fprintf(r.w, "export of %s to %s (%d orders) in a fresh shop\n", e.from, e.to, e.inRange)
	if s, err = r.scaleShop(ctx, "shop-export", storage, noticeOrderTTL); err != nil {
		return err
	}
	defer s.stop()
	if err := r.measureExport(ctx, s, e); err != nil {
		return err
	}
	if e.missing != "" {
		fmt.Fprintf(r.w, "  not measured: %s\n", e.missing)
	} else {
		fmt.Fprintf(r.w, "  %d rows in %s; shop peak RSS %s → %s, CLI peak RSS %s\n", e.rows, roundDuration(e.elapsed),
			megabytes(e.shopBefore.peak), megabytes(e.shopAfter.peak), megabytes(e.cliPeak))
	}
	return nil
}

// midnight is the start of t's day in the local time zone, which the shop
// the harness starts shares: the export's dates are its days.
func midnight(t time.Time) time.Time {
	y, m, d := t.In(time.Local).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.Local)
}

// measurePages stores the orders of h in storage up to each of counts,
// in turn, and measures the operator's pages on s at each.
func (r *scaleRun) measurePages(ctx context.Context, s *shop, h history, storage string, counts []int) ([]pageFigure, error) {
	if err := sleep(ctx, time.Second); err != nil { // the shop's start on the empty storage is over
		return nil, err
	}
	var pages []pageFigure
	stored := 0
	for _, n := range counts {
		fmt.Fprintf(r.w, "operator page: storing orders up to %d\n", n)
		pf := pageFigure{stored: n}
		start := time.Now()
		if err := h.seed(ctx, storage, stored, n, r.opts.concurrency); err != nil {
			return nil, err
		}
		pf.seedTime, stored = time.Since(start), n
		if err := s.measurePage(ctx, &pf); err != nil {
			return nil, err
		}
		fmt.Fprintf(r.w, "  stored in %s; page 1 p50 %s, p90 %s (%d samples)\n", pf.seedTime.Round(time.Millisecond),
			roundDuration(percentile(pf.first, 0.5)), roundDuration(percentile(pf.first, 0.9)), len(pf.first))
		pages = append(pages, pf)
	}
	return pages, nil
}

// checkDisk fails if dir's file system has less than need bytes free.
func checkDisk(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("the operator figures need %s free in %s, and %s is: lower -page-orders",
			megabytes(need), dir, megabytes(free))
	}
	return nil
}

// measurePage times page 1 of GET /kassa/orders?limit=pageLimit on s,
// and page 2 with the cursor page 1 returned.
func (s *shop) measurePage(ctx context.Context, pf *pageFigure) error {
	want := min(pageLimit, pf.stored)
	first := "limit=" + strconv.Itoa(pageLimit)
	var next string
	var err error
	if pf.first, next, err = s.timePage(ctx, first, want); err != nil {
		return err
	}
	if next == "" {
		pf.secondMissing = "page 1 returned no next cursor"
		return nil
	}
	pf.second, _, err = s.timePage(ctx, first+"&before="+url.QueryEscape(next), min(pageLimit, pf.stored-want))
	return err
}

// timePage requests GET /kassa/orders?query pageWarmup times (or fewer,
// once pageBudget/4 is spent: a slow API warms up at once), then times it
// pageSamples times, or fewer once pageBudget is spent, at least
// minPageSamples. Each answer must hold want orders, newest first. It
// returns the times, sorted, and the answer's next cursor.
func (s *shop) timePage(ctx context.Context, query string, want int) ([]time.Duration, string, error) {
	start := time.Now()
	for i := 0; i < pageWarmup && (i == 0 || time.Since(start) < pageBudget/4); i++ {
		if _, err := s.page(ctx, query, want); err != nil {
			return nil, "", err
		}
	}
	var times []time.Duration
	var next string
	start = time.Now()
	for len(times) < pageSamples && (len(times) < minPageSamples || time.Since(start) < pageBudget) {
		t0 := time.Now()
		p, err := s.page(ctx, query, want)
		if err != nil {
			return nil, "", err
		}
		times, next = append(times, time.Since(t0)), p.Next
	}
	slices.Sort(times)
	return times, next, nil
}

// pageClient reads the operator's pages: an API that reads every stored
// order may take longer than newClient's timeout, and is measured all the
// same.
var pageClient = &http.Client{Timeout: 5 * time.Minute}

// orderPage is an answer of GET /kassa/orders.
type orderPage struct {
	Orders []struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"orders"`
	Next string `json:"next"`
}

// check fails unless the page holds want orders, newest first.
func (p orderPage) check(want int) error {
	if len(p.Orders) != want {
		return fmt.Errorf("%d orders, want %d", len(p.Orders), want)
	}
	for i := 1; i < len(p.Orders); i++ {
		if p.Orders[i].CreatedAt.After(p.Orders[i-1].CreatedAt) {
			return fmt.Errorf("order %s is newer than %s before it", p.Orders[i].ID, p.Orders[i-1].ID)
		}
	}
	return nil
}

// page reads one page of GET /kassa/orders?query from the admin API,
// which must hold want orders, newest first.
func (s *shop) page(ctx context.Context, query string, want int) (orderPage, error) {
	var p orderPage
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.admin+"/kassa/orders?"+query, nil)
	if err != nil {
		return p, err
	}
	if err := exchangeJSON(pageClient, req, http.StatusOK, &p); err != nil {
		return p, err
	}
	if err := p.check(want); err != nil {
		return p, fmt.Errorf("GET /kassa/orders?%s: %v", query, err)
	}
	return p, nil
}

// exportTimeout is the CLI's --timeout for the export.
const exportTimeout = 10 * time.Minute

// measureExport runs caddy kassa export of e's range against s, its
// output in a file, and counts the rows. A CLI that fails is recorded in
// e.missing: the export may not be built.
func (r *scaleRun) measureExport(ctx context.Context, s *shop, e *exportFigure) error {
	var err error
	if e.shopBefore, err = s.memory(); err != nil {
		return err
	}
	file := filepath.Join(r.dir, "export.csv")
	defer os.Remove(file)
	res, err := runExport(ctx, r.bin, s.admin, e.from, e.to, file)
	if err != nil {
		return err
	}
	if res.failure != "" {
		e.missing = res.failure
		return nil
	}
	e.elapsed, e.cliPeak = res.elapsed, res.peak
	if e.shopAfter, err = s.memory(); err != nil {
		return err
	}
	if e.rows, err = csvRows(file); err != nil {
		return fmt.Errorf("reading the export: %v", err)
	}
	return nil
}

// exportRun is one run of the export CLI: its time and peak RSS, or why
// it failed.
type exportRun struct {
	elapsed time.Duration
	peak    int64 // bytes
	failure string
}

// runExport runs bin's caddy kassa export of from to to against the admin
// endpoint admin (a base URL), writing its output to file.
func runExport(ctx context.Context, bin, admin, from, to, file string) (exportRun, error) {
	out, err := os.Create(file)
	if err != nil {
		return exportRun{}, err
	}
	defer out.Close()
	u, err := url.Parse(admin)
	if err != nil {
		return exportRun{}, err
	}
	var progress tailWriter
	cmd := exec.CommandContext(ctx, bin, "kassa", "export", "--address", u.Host, "--timeout", exportTimeout.String(),
		"--from", from, "--to", to)
	cmd.Stdout, cmd.Stderr = out, &progress
	start := time.Now()
	runErr := cmd.Run()
	res := exportRun{elapsed: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.peak = ru.Maxrss << 10 // kB on Linux
		}
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.failure = fmt.Sprintf("caddy kassa export: %v: %s", runErr, progress.lastLines(2))
	}
	return res, nil
}

// tailWriter keeps the end of what is written to it: a command's progress
// and errors.
type tailWriter struct{ b []byte }

// tailKept is how much of its output a tailWriter keeps.
const tailKept = 4 << 10

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailKept {
		t.b = t.b[len(t.b)-tailKept:]
	}
	return len(p), nil
}

// lastLines is the last n lines written that are not empty, joined by
// " / ": a command's error and its hint. Progress lines may end in a
// carriage return.
func (t *tailWriter) lastLines(n int) string {
	var last []string
	lines := strings.FieldsFunc(string(t.b), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0 && len(last) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			last = append([]string{l}, last...)
		}
	}
	return strings.Join(last, " / ")
}

// csvRows counts the records of a CSV file after its header.
func csvRows(file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	n := -1 // the header
	for {
		_, err := r.Read()
		if err == io.EOF {
			return max(n, 0), nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}
