package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/caddy-kassa/kassa/internal/testneed"
)

var writeScreenshots = flag.Bool("screenshots", false,
	"write the screenshots to the repository's docs/screenshots (without it they go to a temporary directory)")

// repoRoot is the repository's root, seen from this package's directory
// (tools/browser): the dev Caddy is built there, and the demo read there.
const repoRoot = "../.."

// Bounds of every wait: no step of the test can hang.
const (
	buildWait    = 5 * time.Minute  // go build ./cmd/caddy, on a cold cache
	readyWait    = 20 * time.Second // Caddy answers on both sites
	browserWait  = 30 * time.Second // Chromium starts and opens its first tab
	stepWait     = 15 * time.Second // one browser step: a page, a click, a wait
	receiptWait  = 20 * time.Second // a paid order is seen and its receipt printed
	stopWait     = 5 * time.Second  // a process exits after a signal
	pollInterval = 100 * time.Millisecond
)

// httpClient makes the test's own requests to the shop and the sandbox.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// Viewports of the screenshots.
const (
	desktopWidth, desktopHeight = 1280, 900
	phoneWidth, phoneHeight     = 390, 844
)

// TestStorefront runs the demo shop of example/Caddyfile (with the sandbox
// as every provider) in the dev Caddy build, and buys in it with headless
// Chromium: with JavaScript through the cart, and without it through a
// product's plain form. Each buy is paid on the sandbox's payment page and
// must end with a printed fiscal receipt.
func TestStorefront(t *testing.T) {
	chromium := findChromium(t)
	dir := t.TempDir()
	bin := buildCaddy(t, dir)
	s := startShop(t, bin, dir)
	shots := dir
	if *writeScreenshots {
		shots = filepath.Join(repoRoot, "docs", "screenshots")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	browser := startChromium(t, chromium)

	start := time.Now()
	t.Run("javascript", func(t *testing.T) { buyWithCart(t, browser, s, shots) })
	t.Run("no-javascript", func(t *testing.T) { buyWithoutJavaScript(t, browser, s, shots) })
	t.Logf("the browser runs took %v", time.Since(start).Round(time.Millisecond))
}

// buyWithCart: two products in the cart (one twice), the checkout's error
// messages (provider down, a bad e-mail), the payment, and thanks.html
// showing the paid order and its receipt.
func buyWithCart(t *testing.T, browser context.Context, s *shop, shots string) {
	b := &tab{t: t, ctx: browser, shots: shots}
	b.watch(s)

	b.do("open the shop",
		chromedp.EmulateViewport(desktopWidth, desktopHeight),
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-add="tea-green"]`)))
	b.waitJS("the shop's script to show the empty cart",
		`document.documentElement.className === "js" && !document.getElementById("cart-empty").hidden`)
	b.shot("01-shop.png")

	inc := chromedp.CSS(`.cart-line[data-sku="tea-green"] [data-action="inc"]`)
	b.do("add green tea and honey to the cart, and a second green tea",
		chromedp.Click(chromedp.CSS(`[data-add="tea-green"]`)),
		chromedp.Click(chromedp.CSS(`[data-add="honey"]`)),
		chromedp.WaitVisible(inc),
		chromedp.Click(inc))
	const cartFilled = `(() => {
		const text = sel => document.querySelector(sel).textContent.replace(/\s+/g, " ").trim();
		return text("#cart-count") === "3" && document.querySelectorAll(".cart-line").length === 2 &&
			text('.cart-line[data-sku="tea-green"] .qty') === "2" && text('.cart-line[data-sku="honey"] .qty') === "1" &&
			text("#cart-total") === "1 150 ₽" && text("#checkout-submit") === "Оплатить 1 150 ₽";
	})()`
	b.waitJS("the cart to hold 2 × green tea and 1 × honey for 1 150 ₽", cartFilled)
	b.do("reload the page", chromedp.Reload())
	b.waitJS("the cart to survive the reload (localStorage)", cartFilled)

	b.do("type the e-mail", chromedp.SendKeys(chromedp.CSS("#co-email"), "buyer@example.com"))
	b.waitJS("the added-to-cart feedback to end", `!document.querySelector(".btn.added")`)
	b.shot("02-cart.png")

	b.do("switch to a phone's screen",
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulatePortrait),
		chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.waitJS("the phone layout with the bottom cart bar", `innerWidth === 390 && scrollY === 0 &&
		getComputedStyle(document.getElementById("cart-bar")).position === "fixed" &&
		getComputedStyle(document.querySelector(".product")).flexDirection === "row"`)
	b.shotScreen("07-phone.png")
	b.do("follow the cart bar to the cart", chromedp.Click(chromedp.CSS("#cart-bar")))
	b.waitJS("the cart at the top of the phone's screen, without the bar", `location.hash === "#cart" &&
		Math.abs(document.getElementById("cart").getBoundingClientRect().top - 80) < 20 && document.getElementById("cart-bar").hidden`)
	b.shotScreen("09-phone-cart.png")
	b.do("back to the desktop screen", chromedp.EmulateViewport(desktopWidth, desktopHeight))

	// The provider is down: the buyer is told, and nothing is paid.
	s.fault(t, `{"api":"crystalpay","op":"invoice/create","mode":"drop","count":1}`)
	b.do("check out while CrystalPAY is down", chromedp.Click(chromedp.CSS("#checkout-submit")))
	b.waitJS("the message that the payment service is down", `(() => {
		const box = document.getElementById("checkout-error");
		return !box.hidden && box.textContent.includes("Платёжный сервис недоступен, попробуйте через минуту") &&
			document.activeElement === box && document.getElementById("checkout-submit").getAttribute("aria-busy") === "false";
	})()`)
	b.shot("08-error.png")

	// An address the browser accepts but the server does not: the message
	// is shown at the field.
	b.do("check out with a bad e-mail",
		clearInput("co-email"),
		chromedp.SendKeys(chromedp.CSS("#co-email"), "buyer@localhost"),
		chromedp.Click(chromedp.CSS("#checkout-submit")))
	b.waitJS("the bad e-mail message at the field", `(() => {
		const input = document.getElementById("co-email"), msg = document.getElementById("co-email-error");
		return input.getAttribute("aria-invalid") === "true" && document.activeElement === input &&
			msg && msg.textContent.includes("Проверьте e-mail") && input.getAttribute("aria-describedby").includes("co-email-error");
	})()`)

	b.do("check out and reach the payment page",
		clearInput("co-email"),
		chromedp.SendKeys(chromedp.CSS("#co-email"), "buyer@example.com"),
		chromedp.Click(chromedp.CSS("#checkout-submit")),
		chromedp.WaitVisible(chromedp.CSS("#pay")))
	b.wantLocation("the sandbox's payment page", s.sandbox+"/pay/crystalpay/")
	b.shot("03-payment.png")

	b.do("pay and come back to thanks.html", chromedp.Click(chromedp.CSS("#pay")), chromedp.WaitVisible(chromedp.CSS("#status")))
	b.wantLocation("thanks.html", s.url+"/thanks.html?order=")
	b.waitJSFor(receiptWait, "thanks.html to show the paid order, the fiscal sign and the receipt page", `(() => {
		const frame = document.getElementById("receipt-frame");
		return document.getElementById("status").classList.contains("paid") &&
			/^\d+$/.test(document.getElementById("fiscal-sign").textContent) &&
			!frame.hidden && frame.contentDocument && frame.contentDocument.readyState === "complete" &&
			frame.contentDocument.body.textContent.includes("ФП") && frame.style.height !== "";
	})()`)
	id := run(b, "read the order id", chromedp.Evaluate[string](`new URLSearchParams(location.search).get("order")`))
	sign := run(b, "read the fiscal sign", chromedp.Evaluate[string](`document.getElementById("fiscal-sign").textContent`))
	b.waitJS("the paid order to empty the cart", `localStorage.getItem("kassa-demo-cart") === null`)
	b.shot("04-thanks.png")

	o := s.order(t, id)
	if o.State != "paid" || o.Amount != "1150.00" || o.Receipt.State != "done" || o.Receipt.Fiscal.Sign != sign {
		t.Errorf("order %s: state %s, amount %s, receipt %s with sign %q; want paid, 1150.00, done with the page's sign %q",
			id, o.State, o.Amount, o.Receipt.State, o.Receipt.Fiscal.Sign, sign)
	}
	if got := o.lines(); got != "honey×1 tea-green×2" {
		t.Errorf("order %s has %s, want honey×1 tea-green×2", id, got)
	}
	if n, all := s.receiptsSent(t, id); n != 1 || all != 1 {
		t.Errorf("the sandbox got %d formReceipt calls, %d for order %s; want exactly 1, for it", all, n, id)
	}
	s.checkCallback(t, id)

	b.do("open the printable receipt",
		chromedp.Navigate(s.url+"/receipt?order="+url.QueryEscape(id)),
		chromedp.WaitVisible(chromedp.CSS(`svg[aria-label="QR-код чека"]`)))
	b.waitJS("the receipt page to show the fiscal sign",
		`document.body.innerText.includes("ФП") && document.body.innerText.includes(`+strconv.Quote(sign)+`)`)
	b.shot("05-receipt.png")
	b.checkWatch()
}

// buyWithoutJavaScript buys one product through its card's plain form with
// JavaScript off, pays, and follows thanks.html's <noscript> link to the
// receipt.
func buyWithoutJavaScript(t *testing.T, browser context.Context, s *shop, shots string) {
	ctx, cancel := chromedp.NewContext(browser) // a second tab
	defer cancel()
	if err := openTab(ctx); err != nil {
		t.Fatalf("opening a second tab: %v", err)
	}
	b := &tab{t: t, ctx: ctx, shots: shots}
	b.do("open a tab with JavaScript off",
		chromedp.EmulateViewport(desktopWidth, desktopHeight),
		chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	b.watch(s)

	b.do("open the shop", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#email-tea-black")))
	if class := run(b, "read <html>'s class", chromedp.AttributeValue(chromedp.CSS("html"), "class")); class.Value != "no-js" {
		t.Fatalf("<html class=%q>: the page's script ran although JavaScript is off", class.Value)
	}
	b.do("the cart is hidden", chromedp.WaitNotVisible(chromedp.CSS("#cart")))

	b.do("type the e-mail into black tea's form", chromedp.SendKeys(chromedp.CSS("#email-tea-black"), "nojs@example.com"))
	b.shot("10-nojs-shop.png")
	b.do("buy black tea with its own form and reach the payment page",
		chromedp.Click(chromedp.CSS(`.product[data-sku="tea-black"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#pay")))
	b.wantLocation("the sandbox's payment page", s.sandbox+"/pay/crystalpay/")

	b.do("pay and come back to thanks.html",
		chromedp.Click(chromedp.CSS("#pay")),
		chromedp.WaitVisible(chromedp.CSS("#receipt-link-nojs")))
	b.wantLocation("thanks.html", s.url+"/thanks.html?order=")
	link := run(b, "read the receipt link", chromedp.AttributeValue(chromedp.CSS("#receipt-link-nojs"), "href"))
	id, ok := strings.CutPrefix(link.Value, "/receipt?order=")
	if !ok || id == "" {
		t.Fatalf("the <noscript> receipt link is %q, want /receipt?order=<id>", link.Value)
	}
	if shown := run(b, "read the order id shown", chromedp.TextContent(chromedp.CSS("#order"))); shown != id {
		t.Errorf("thanks.html shows order %q, its receipt link is for %q", shown, id)
	}
	b.shot("06-nojs.png")

	// Without JavaScript nothing polls the order: CrystalPAY's callback
	// tells Caddy of the payment (the reconciler's polling is the
	// fallback), and the receipt page shows the receipt once printed. The
	// buyer reloads it.
	b.do("follow the receipt link", chromedp.Click(chromedp.CSS("#receipt-link-nojs")), chromedp.WaitVisible(chromedp.CSS(".receipt")))
	deadline := time.Now().Add(receiptWait)
	for {
		text := run(b, "read the receipt page", chromedp.TextContent(chromedp.CSS(".receipt")))
		if regexp.MustCompile(`ФП\s*\d+`).MatchString(text) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the receipt page of order %s still has no fiscal sign:\n%s", receiptWait, id, text)
		}
		time.Sleep(250 * time.Millisecond)
		b.do("reload the receipt page", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".receipt")))
	}

	o := s.order(t, id)
	if o.State != "paid" || o.Amount != "290.00" || o.Receipt.State != "done" || o.lines() != "tea-black×1" {
		t.Errorf("order %s: state %s, amount %s, receipt %s, lines %s; want paid, 290.00, done, tea-black×1",
			id, o.State, o.Amount, o.Receipt.State, o.lines())
	}
	if n, _ := s.receiptsSent(t, id); n != 1 {
		t.Errorf("the sandbox got %d formReceipt calls for order %s, want exactly 1", n, id)
	}
	s.checkCallback(t, id)
	b.checkWatch()
}

// ---- the browser ----

// findChromium returns the browser to drive: $CHROMIUM, else the first of
// the usual names found. Without one the test skips, saying what to
// install (or fails under KASSA_REQUIRE_ALL, as in CI: see testneed).
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("$CHROMIUM=%q: %v", p, err)
		}
		return path
	}
	return testneed.Program(t, "chromium", "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
}

// startChromium starts a headless Chromium with a fresh profile, and returns
// the context of its first tab. The flags keep it off the network: without
// them Chromium stalls trying to reach Google's services.
func startChromium(t *testing.T, path string) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helpers may still write in the profile for
	// a moment after the browser exits, which would fail TempDir's cleanup.
	dir, err := os.MkdirTemp("", "kassa-browser-test-")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Headless,
		chromedp.NoSandbox, // Chromium's sandbox refuses to run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "ru-RU"),
		chromedp.WindowSize(desktopWidth, desktopHeight),
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache")),
		chromedp.CombinedOutput(logFile),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits until the browser has exited
		logFile.Close()
		if t.Failed() {
			t.Logf("----- Chromium's output -----\n%s", tail(logPath))
		}
		removeAll(t, dir)
	})

	if err := openTab(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", path, err, tail(logPath))
	}
	return ctx
}

// openTab starts the browser or opens the tab of a context. It runs on the
// tab's own context, as a step on a timeout context would close the tab
// (or end the browser) when the step ends, and is bounded from outside.
func openTab(ctx context.Context) error {
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		return err
	case <-time.After(browserWait):
		chromedp.Cancel(ctx)
		return fmt.Errorf("no tab after %v", browserWait)
	}
}

// removeAll removes a directory that a process that just ended may still
// be writing in.
func removeAll(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("removing %s: %v", dir, err)
}

// tab is one browser tab and the test it serves.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu       sync.Mutex
	problems []string // uncaught exceptions and failed loads, from watch
	stop     context.CancelFunc
}

// do runs browser steps, each bounded by stepWait, and fails the test with
// where the tab is if one fails.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for _, step := range steps {
		ctx, cancel := context.WithTimeout(b.ctx, stepWait)
		err := chromedp.Do(ctx, step)
		cancel()
		if err != nil {
			b.t.Fatalf("%s: %v%s", what, err, b.where())
		}
	}
}

// run runs one browser action that returns a value, bounded by stepWait.
func run[T any](b *tab, what string, action chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepWait)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.where())
	}
	return v
}

// waitJS waits until a JavaScript expression is true in the page.
func (b *tab) waitJS(what, expr string) {
	b.t.Helper()
	b.waitJSFor(stepWait-time.Second, what, expr)
}

func (b *tab) waitJSFor(limit time.Duration, what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(pollInterval)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v%s", what, err, b.where())
	}
}

// clearInput empties a text field as a buyer would, with an input event.
// (chromedp.SetValue cannot set "": it passes no argument for it.)
func clearInput(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => {
		const input = document.getElementById(` + strconv.Quote(id) + `);
		input.value = "";
		input.dispatchEvent(new Event("input", {bubbles: true}));
	})()`)
}

// wantLocation checks the tab's URL.
func (b *tab) wantLocation(what, prefix string) {
	b.t.Helper()
	loc := run(b, "read the location", chromedp.Location())
	if !strings.HasPrefix(loc, prefix) {
		b.t.Fatalf("at %s, want %s (%s...)", loc, what, prefix)
	}
}

// shot saves a screenshot of the whole page, scrolled to the top so that
// the sticky header is where it belongs.
func (b *tab) shot(name string) {
	b.t.Helper()
	b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.save(name, run(b, "screenshot "+name, chromedp.FullScreenshot(100)))
}

// shotScreen saves a screenshot of what the screen shows.
func (b *tab) shotScreen(name string) {
	b.t.Helper()
	b.save(name, run(b, "screenshot "+name, chromedp.CaptureScreenshot()))
}

func (b *tab) save(name string, png []byte) {
	b.t.Helper()
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// where describes the tab for a failure message: its URL and text.
func (b *tab) where() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("\n(the tab does not answer: %v)", err)
	}
	text, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("body")))
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	return fmt.Sprintf("\nthe tab is at %s:\n%s", loc, text)
}

// watch records the page's uncaught exceptions and failed loads from the
// shop, except the checkout's own error answers, until checkWatch.
func (b *tab) watch(s *shop) {
	ctx, stop := context.WithCancel(b.ctx)
	b.stop = stop
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	responses := chromedp.Events(ctx, network.ResponseReceived)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.note(fmt.Sprintf("uncaught exception at %s:%d: %s", ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber, msg))
		}
	}()
	go func() {
		for ev, err := range responses {
			if err != nil {
				return
			}
			u, perr := url.Parse(ev.Response.URL)
			if perr != nil || ev.Response.Status < 400 || !strings.HasPrefix(ev.Response.URL, s.url) || u.Path == "/pay" || u.Path == "/pay/card" {
				continue
			}
			b.note(fmt.Sprintf("%s answered %d", ev.Response.URL, ev.Response.Status))
		}
	}()
}

func (b *tab) note(problem string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, problem)
}

// checkWatch fails the test if watch saw a problem.
func (b *tab) checkWatch() {
	b.t.Helper()
	b.stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Error(p)
	}
}

// ---- the shop ----

// shop is the running Caddy: the storefront and the sandbox.
type shop struct {
	url, sandbox string // http://127.0.0.1:<port>
}

// buildCaddy builds the dev Caddy (standard modules, kassa and the sandbox).
func buildCaddy(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "caddy")
	ctx, cancel := context.WithTimeout(context.Background(), buildWait)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	t.Logf("built ./cmd/caddy in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// startShop runs example/Caddyfile, moved to free loopback ports and a
// storage of its own, with fast polling and receipts, and waits until both
// sites answer. The process is stopped when the test ends.
func startShop(t *testing.T, bin, dir string) *shop {
	t.Helper()
	example, err := os.ReadFile(filepath.Join(repoRoot, "example", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	site, err1 := filepath.Abs(filepath.Join(repoRoot, "example", "site"))
	catalog, err2 := filepath.Abs(filepath.Join(repoRoot, "example", "catalog.json"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	shopPort, sandboxPort, adminPort := freePort(t), freePort(t), freePort(t)
	s := &shop{url: fmt.Sprintf("http://127.0.0.1:%d", shopPort), sandbox: fmt.Sprintf("http://127.0.0.1:%d", sandboxPort)}

	config := string(example)
	edit := func(what, pattern, replacement string, min, max int) {
		t.Helper()
		re := regexp.MustCompile(pattern)
		if n := len(re.FindAllStringIndex(config, -1)); n < min || n > max {
			t.Fatalf("example/Caddyfile has %d matches of %q (%s), want %d to %d: it changed, update startShop", n, pattern, what, min, max)
		}
		config = re.ReplaceAllString(config, replacement)
	}
	quote := func(path string) string { return strconv.Quote(strings.ReplaceAll(path, "$", "$$")) }
	edit("the shop's address", `http://localhost:8080`, s.url, 2, 100)
	edit("the sandbox's address", `http://localhost:9080`, s.sandbox, 2, 100)
	edit("the global options", `(?m)^\{\s*$`, "{\n\tadmin localhost:"+strconv.Itoa(adminPort), 1, 1)
	edit("the kassa option", `(?m)^(\s*)kassa \{\s*$`, "${1}kassa {\n${1}\tstorage file_system "+quote(filepath.Join(dir, "kassa")), 1, 1)
	edit("the site root", `(?m)^(\s*)root \* example/site\s*$`, "${1}root * "+quote(site), 1, 1)
	edit("the catalog", `(?m)^(\s*)catalog example/catalog\.json\s*$`, "${1}catalog "+quote(catalog), 1, 1)
	edit("the reconciler's period", `(?m)^(\s*)poll_interval \S+\s*$`, "${1}poll_interval 200ms", 1, 1)
	edit("the sandbox", `(?m)^(\s*)kassa_sandbox \{\s*$`, "${1}kassa_sandbox {\n${1}\treceipt_delay 0s", 1, 1)

	home := filepath.Join(dir, "caddy-home")
	for _, d := range []string{home, filepath.Join(home, "data"), filepath.Join(home, "config")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting caddy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(stopWait):
				cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("----- the Caddyfile -----\n%s\n----- Caddy's log -----\n%s", config, tail(logPath))
		}
	})

	deadline := time.Now().Add(readyWait)
	for {
		select {
		case <-exited:
			t.Fatalf("caddy exited before it was ready:\n%s", tail(logPath))
		default:
		}
		shopErr := getOK(s.url + "/")
		sandboxErr := getOK(s.sandbox + "/control/state")
		if shopErr == nil && sandboxErr == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy not ready after %v: %v", readyWait, errors.Join(shopErr, sandboxErr))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getOK(url string) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// order is the part of GET /pay?order= the test checks.
type order struct {
	State  string `json:"state"`
	Amount string `json:"amount"`
	Items  []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
	Receipt struct {
		State  string `json:"state"`
		Fiscal struct {
			Sign string `json:"fiscalDocumentSign"`
		} `json:"fiscal"`
	} `json:"receipt"`
}

// lines lists the order's items as "sku×qty", sorted by SKU.
func (o *order) lines() string {
	var l []string
	for _, it := range o.Items {
		l = append(l, fmt.Sprintf("%s×%d", it.SKU, it.Qty))
	}
	for i := range l { // a handful of lines: insertion sort
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return strings.Join(l, " ")
}

// order asks the shop for an order's status, as thanks.js does.
func (s *shop) order(t *testing.T, id string) *order {
	t.Helper()
	var o order
	s.getJSON(t, s.url+"/pay?order="+url.QueryEscape(id), &o)
	return &o
}

// receiptsSent counts the formReceipt calls the sandbox got for an order,
// and in all.
func (s *shop) receiptsSent(t *testing.T, id string) (forOrder, all int) {
	t.Helper()
	var journal struct {
		Calls []struct {
			Body json.RawMessage `json:"body"`
		} `json:"calls"`
	}
	s.getJSON(t, s.sandbox+"/control/calls?api=smartcashier&op=formReceipt", &journal)
	for _, c := range journal.Calls {
		if bytes.Contains(c.Body, []byte(id)) {
			forOrder++
		}
	}
	return forOrder, len(journal.Calls)
}

// checkCallback checks that CrystalPAY (the sandbox) called the shop back
// once about the order's invoice, and that the shop's kassa_callback route
// took it (200).
func (s *shop) checkCallback(t *testing.T, id string) {
	t.Helper()
	var journal struct {
		Calls []struct {
			Body   json.RawMessage `json:"body"`
			Status int             `json:"status"`
		} `json:"calls"`
	}
	s.getJSON(t, s.sandbox+"/control/calls?api=crystalpay&op=callback", &journal)
	var statuses []int
	for _, c := range journal.Calls {
		if bytes.Contains(c.Body, []byte(`"extra":"`+id+`"`)) {
			statuses = append(statuses, c.Status)
		}
	}
	if len(statuses) != 1 || statuses[0] != http.StatusOK {
		t.Errorf("the callbacks of order %s were answered %v, want one 200", id, statuses)
	}
}

// fault adds a fault to the sandbox.
func (s *shop) fault(t *testing.T, body string) {
	t.Helper()
	resp, err := httpClient.Post(s.sandbox+"/control/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /control/faults %s: %s %s", body, resp.Status, b)
	}
}

func (s *shop) getJSON(t *testing.T, url string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail returns the end of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const limit = 16 << 10
	if len(b) > limit {
		b = append([]byte("…\n"), b[len(b)-limit:]...)
	}
	return string(b)
}
