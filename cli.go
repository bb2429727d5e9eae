package kassa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "kassa",
		Usage: "<command> [--address <admin>] [--json] [<args>]",
		Short: "Operates caddy-kassa through the admin API: the morning check, balances, orders, receipts, payouts, cash, events, the month's totals; migrates its storage",
		Long: `
Operates caddy-kassa in a running Caddy through its admin API: reads the
payment accounts' balances and the orders (one also by the shop's own order
id, --shop-order-id), cancels or confirms an order,
issues its fiscal receipt or its refund (return) receipt, sends a payout
and asks where one stands, records cash put into or taken out of the till, and lists the shop's
notification events and delivers one again.

One command works with Caddy stopped, without the admin API: caddy kassa
migrate copies the kassa records from one config's storage to another's
(see caddy kassa migrate --help).

The admin endpoint is --address (host:port, http://host:port or
unix//path/to/socket); without it, the admin address of the config named by
--config, else CADDY_ADMIN, else localhost:2019, as 'caddy stop' finds it.
A --config that turns the admin endpoint off (admin off) is an error.

Output is a table for people; --json prints the API's JSON as it is, for
scripts (an error's JSON too). Each call waits at most --timeout (10s).

Exit status: 0 on success; 1 when the API answers with an error or cannot
be reached (the error's code and message are printed to stderr as
"kassa: <code>: <message>"); 2 on a usage error (a missing argument or flag,
an unknown command or flag, a malformed amount); 3 when caddy kassa check
found something that needs action.
`,
		CobraFunc: kassaCommand,
	})
}

// cliTimeout bounds each call to the admin API unless --timeout says
// otherwise.
const cliTimeout = 10 * time.Second

// maxCLIReply caps how much of an admin reply the CLI reads.
const maxCLIReply = 16 << 20

// kassaCommand builds `caddy kassa` and its subcommands on cmd.
func kassaCommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = groupRunE
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return finish(c, usageErrorf("%v", err))
	})
	pf := cmd.PersistentFlags()
	pf.String("address", "", "Admin API endpoint (host:port, http://host:port or unix//socket; default: as 'caddy stop' finds it)")
	pf.StringP("config", "c", "", "Config file to read the admin address from, when --address is not given")
	pf.StringP("adapter", "a", "", "Name of the config adapter for --config")
	pf.Bool("json", false, "Print the API's JSON as it is")
	pf.Duration("timeout", cliTimeout, "How long to wait for each admin API reply")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "balance",
			Short: "Shows the balance of every payment account",
			Args:  cobra.ArbitraryArgs,
			RunE:  kassaRunE(0, cliBalance),
		},
		checkCommand(),
		ordersCommand(),
		&cobra.Command{
			Use:   "order <id>",
			Short: "Shows one order, whole, with the buyer's contacts unmasked",
			Args:  cobra.ArbitraryArgs,
			RunE:  kassaRunE(1, cliOrder),
		},
		orderActionCommand("cancel", "Cancels a pending order at its provider"),
		orderActionCommand("confirm", "Marks an order paid on the operator's word: a pending one paid, one that closed unpaid (expired, cancelled) paid late; its receipt follows"),
		orderActionCommand("receipt", "Issues the paid order's fiscal receipt, or sends a failed one again"),
		refundCommand(),
		payoutCommand(),
		payoutStatusCommand(),
		cashCommand(),
		&cobra.Command{
			Use:   "operation <operation_id>",
			Short: "Shows where a receipt-service operation stands, with its fiscal data once done",
			Args:  cobra.ArbitraryArgs,
			RunE:  kassaRunE(1, cliOperation),
		},
		exportCommand(),
		migrateCommand(),
		eventsCommand(),
		&cobra.Command{
			Use:   "redeliver <event_id>",
			Short: "Delivers an event to its notification receivers again (a failed or delivered one), with the same id and body",
			Args:  cobra.ArbitraryArgs,
			RunE:  kassaRunE(1, cliRedeliver),
		},
	)
}

func eventsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "events [--state <state>] [--limit <n>]",
		Short: "Lists the shop's notification events and their delivery, newest first",
		Args:  cobra.ArbitraryArgs,
		RunE:  kassaRunE(0, cliEvents),
	}
	c.Flags().String("state", "", "Only events in this state (pending, delivered, failed)")
	c.Flags().Int("limit", 0, "At most this many events (1 to 1000; the API's default is 50)")
	return c
}

func ordersCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "orders [--state <state>] [--limit <n>] [--from <date>] [--to <date>] [--before <cursor>] | --shop-order-id <id>",
		Short: "Lists orders, newest first, a page at a time, or shows the one of a shop's order id",
		Long: `
Lists orders, newest first, a page at a time. When more orders follow, the
command ends with a line on stderr giving the --before cursor of the next
page: run it again with the same flags and that --before.

--from and --to bound the orders' creation time: a date (2026-11-01, which
is midnight in the kassa app's time_zone) or an RFC 3339 time
(2026-11-01T00:00:00+03:00); --from is inclusive, --to exclusive.

A page filtered by --state reads at most ten times its limit (at least
1000) orders: it may then show fewer orders than --limit, or none, and
still name a next page.
`,
		Args: cobra.ArbitraryArgs,
		RunE: kassaRunE(0, cliOrders),
	}
	c.Flags().String("state", "", "Only orders in this state (creating, pending, paid, expired, cancelled, failed)")
	c.Flags().Int("limit", 0, "At most this many orders (1 to 1000; the API's default is 50)")
	c.Flags().String("from", "", "Only orders created at or after this date (2026-11-01) or RFC 3339 time")
	c.Flags().String("to", "", "Only orders created before this date (2026-12-01) or RFC 3339 time")
	c.Flags().String("before", "", "The cursor of the page to show, as the previous page printed it")
	c.Flags().String("shop-order-id", "", "Show the order a proxied checkout made for this upstream order id (X-Kassa-Order)")
	return c
}

func orderActionCommand(action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " <id>",
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: kassaRunE(1, func(k *kassaCLI, args []string) error {
			return k.orderAction(args[0], action, nil)
		}),
	}
}

func refundCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "refund <id> [--email <e-mail>] [--phone <phone>]",
		Short: "Issues the refund (return) receipt of a paid order whose sale receipt is done",
		Long: `
Issues the refund (return) receipt of a paid order whose sale receipt is
done, or sends a failed one again. Return the money at the provider first.

The receipt goes to the buyer's e-mail or phone kept in the order. Once
erase_contacts_after has erased them, give the ones the buyer wants the
receipt at with --email or --phone (or both); without, the API answers
contact_required. Contacts given replace the order's, both of them.
`,
		Args: cobra.ArbitraryArgs,
		RunE: kassaRunE(1, cliRefund),
	}
	c.Flags().String("email", "", "The buyer's e-mail for the refund receipt")
	c.Flags().String("phone", "", "The buyer's phone for the refund receipt")
	return c
}

// cliRefund: caddy kassa refund ID [--email E] [--phone P]. The contacts
// are checked as the API checks them; without any, no body is sent.
func cliRefund(k *kassaCLI, args []string) error {
	email, _ := k.cmd.Flags().GetString("email")
	phone, _ := k.cmd.Flags().GetString("phone")
	email, phone, err := ValidateContacts(email, phone)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			return usageErrorf("--%s: %s", re.Field, re.Message)
		}
		return usageErrorf("%v", err)
	}
	var body any
	if email != "" || phone != "" {
		body = struct {
			Email string `json:"email,omitempty"`
			Phone string `json:"phone,omitempty"`
		}{email, phone}
	}
	return k.orderAction(args[0], "refund", body)
}

func payoutCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "payout --payment <account> --amount <rubles> --to <payee> --method <method> [--comment <text>] [--order-id <id>] [--idempotency-key <key>]",
		Short: "Sends money from a payment account to a payee (at most once per idempotency key)",
		Long: `
Sends money from a payment account to a payee: CrystalPAY withdraw (api
v3: payoff/create, then payoff/submit) or Pegas-kassa withdrawal.

Each run makes a new payout under a new random idempotency key, which it
prints. Under one key a payout is made at most once: a repeat answers with
the first outcome and pays nothing more. If a run's outcome is unknown (the
reply was lost, the provider did not answer, the admin API timed out),
re-run it with the same arguments and --idempotency-key <the key it
printed>; without that flag, a re-run is a new payout. For Pegas-kassa the
re-run finds out or finishes the payout (the provider refuses a repeated
order id); so does it for CrystalPAY's api v3, which is asked about the
payout by its id; for CrystalPAY's api v1, which cannot be asked, it says
the outcome is still unknown, and the provider's dashboard tells whether
the payout was made.
`,
		Args: cobra.ArbitraryArgs,
		RunE: kassaRunE(0, cliPayout),
	}
	f := c.Flags()
	f.String("payment", "", "Payment account to pay from (its name in the config)")
	f.String("amount", "", "Amount in rubles, like 100 or 100.50")
	f.String("to", "", "Payee: wallet, card or phone number, or nickname")
	f.String("method", "", "Provider's payout method (CrystalPAY service code such as qw; Pegas-kassa wallet, yandex, card, nickname, phone)")
	f.String("comment", "", "Comment sent with the payout (Pegas-kassa: 3 to 100 characters)")
	f.String("order-id", "", "Shop's id of the payout (Pegas-kassa refuses a repeat; default: one made from the idempotency key)")
	f.String("idempotency-key", "", "Repeat the payout made under this key (printed by an earlier run) instead of making a new one: it pays at most once")
	return c
}

func payoutStatusCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "payout-status <id> [--payment <account>]",
		Short: "Shows where a payout stands at its provider, by the provider's id of it (CrystalPAY api v3)",
		Args:  cobra.ArbitraryArgs,
		RunE:  kassaRunE(1, cliPayoutStatus),
	}
	c.Flags().String("payment", "", "Payment account the payout was made from (default: the one whose provider tracks payouts)")
	return c
}

func cashCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "cash deposit|withdraw --amount <rubles> [--cashbox <id>] [--operation-id <id>]",
		Short: "Records cash put into (deposit) or taken out of (withdraw) the till",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	for _, direction := range []string{"deposit", "withdraw"} {
		short := "Records cash put into the till"
		if direction == "withdraw" {
			short = "Records cash taken out of the till"
		}
		sub := &cobra.Command{
			Use:   direction + " --amount <rubles> [--cashbox <id>] [--operation-id <id>]",
			Short: short,
			Args:  cobra.ArbitraryArgs,
			RunE: kassaRunE(0, func(k *kassaCLI, _ []string) error {
				return k.cash(direction)
			}),
		}
		sub.Flags().String("amount", "", "Amount in rubles, like 500 or 500.00")
		sub.Flags().String("cashbox", "", "Cashbox id (default: the receipt service's)")
		sub.Flags().String("operation-id", "", "Operation id; sending the same id again does nothing twice (default: a new one)")
		c.AddCommand(sub)
	}
	return c
}

// groupRunE runs a command that only groups others: called bare or with
// an unknown subcommand, it is a usage error.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return finish(cmd, usageErrorf("%s needs a command: %s", cmd.CommandPath(), subcommandNames(cmd)))
	}
	return finish(cmd, usageErrorf("unknown command %q for %s (commands: %s)", args[0], cmd.CommandPath(), subcommandNames(cmd)))
}

func subcommandNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// kassaRunE makes a subcommand's RunE: it checks that the command got
// exactly nargs arguments, connects to the admin API and runs fn.
func kassaRunE(nargs int, fn func(k *kassaCLI, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkArgs(cmd, args, nargs); err != nil {
			return finish(cmd, err)
		}
		k, err := newKassaCLI(cmd)
		if err != nil {
			return finish(cmd, err)
		}
		return finish(cmd, fn(k, args))
	}
}

func checkArgs(cmd *cobra.Command, args []string, n int) error {
	switch {
	case len(args) == n:
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				return usageErrorf("%s: the %s is empty", cmd.CommandPath(), argName(cmd))
			}
		}
		return nil
	case len(args) < n:
		return usageErrorf("%s needs the %s", cmd.CommandPath(), argName(cmd))
	case n == 0:
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	default:
		return usageErrorf("%s takes one %s, got %d arguments", cmd.CommandPath(), argName(cmd), len(args))
	}
}

// argName is the name of a command's one argument.
func argName(cmd *cobra.Command) string {
	switch cmd.Name() {
	case "operation":
		return "operation id"
	case "redeliver":
		return "event id"
	case "payout-status":
		return "payout id"
	}
	return "order id"
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// finish reports err the CLI's way: "kassa: ..." on stderr (never Caddy's
// log line or cobra's "Error:"), and an error that makes caddycmd.Main exit
// 1, or 2 for a usage error.
func finish(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	cmd.SilenceErrors = true
	fmt.Fprintf(cmd.ErrOrStderr(), "kassa: %v\n", err)
	if errors.As(err, new(needsAction)) {
		return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
			return exitNeedsAction, nil
		})(cmd, nil)
	}
	var ue usageError
	if !errors.As(err, &ue) {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Run '%s --help' for usage.\n", cmd.CommandPath())
	// caddycmd.Main exits with a status other than 1 only for the error
	// WrapCommandFuncForCobra makes; with no error to log it prints nothing.
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
		return exitUsage, nil
	})(cmd, nil)
}

// The exit statuses other than 0 and 1: a usage error, and a morning
// check that found something needing action.
const (
	exitUsage       = 2
	exitNeedsAction = 3
)

// apiError is an error reply of the kassa admin API, as the CLI got it.
type apiError struct {
	// Status is the HTTP status of the reply.
	Status int `json:"-"`
	// Code is the API's stable reason ("unknown_order"); empty when the
	// reply was not the kassa API's (Caddy's own admin errors).
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending field or parameter, when there is one.
	Field string `json:"field,omitempty"`
}

// Error says "code: message", or "HTTP status: message" without a code.
func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return e.Code + ": " + e.Message
}

// kassaCLI is one run of a `caddy kassa` command: its flags, the admin API
// and where to print.
type kassaCLI struct {
	cmd    *cobra.Command
	admin  *adminClient
	json   bool
	out    io.Writer
	errOut io.Writer
}

func newKassaCLI(cmd *cobra.Command) (*kassaCLI, error) {
	flags := caddycmd.Flags{FlagSet: cmd.Flags()}
	addr, err := adminAddress(flags)
	if err != nil {
		return nil, fmt.Errorf("finding the admin address: %v", err)
	}
	timeout, err := cmd.Flags().GetDuration("timeout")
	if err != nil || timeout <= 0 {
		return nil, usageErrorf("--timeout must be a positive duration, like 10s")
	}
	admin, err := newAdminClient(addr, timeout)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return &kassaCLI{cmd: cmd, admin: admin, json: flags.Bool("json"), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}, nil
}

// adminAddress is the admin endpoint to call, as 'caddy stop' finds it:
// --address, else the admin address of --config, else CADDY_ADMIN, else
// localhost:2019. A --config whose admin endpoint is off is an error, not
// the default address, where another Caddy may be listening.
func adminAddress(flags caddycmd.Flags) (string, error) {
	address, file := flags.String("address"), flags.String("config")
	if address != "" || file == "" {
		return caddycmd.DetermineAdminAPIAddress(address, nil, "", "")
	}
	config, _, _, err := caddycmd.LoadConfig(file, flags.String("adapter"))
	if err != nil {
		return "", err
	}
	var c struct {
		Admin caddy.AdminConfig `json:"admin"`
	}
	if json.Unmarshal(config, &c) == nil && c.Admin.Disabled {
		return "", fmt.Errorf("%s turns the admin endpoint off (admin off), and caddy kassa works only through it", file)
	}
	return caddycmd.DetermineAdminAPIAddress("", config, file, "")
}

// adminClient calls Caddy's admin endpoint the way caddycmd.AdminAPIRequest
// does (TCP or a unix socket, an Origin the admin accepts), but with a
// timeout, and keeps the status and body of an error reply: the kassa API
// puts a code in it.
type adminClient struct {
	addr   string
	origin string
	client *http.Client
	// streaming waits at most the timeout for a reply's headers, and then
	// as long as its body takes (an export).
	streaming *http.Client
	tcp       bool
}

// newAdminClient reads an admin address: host:port, http://host:port, or
// a network address such as unix//run/caddy-admin.sock. Each call gets at
// most timeout.
func newAdminClient(addr string, timeout time.Duration) (*adminClient, error) {
	dial := addr
	if scheme, _, ok := strings.Cut(addr, "://"); ok {
		u, err := url.Parse(addr)
		switch {
		case err != nil:
			return nil, fmt.Errorf("admin address %q: %v", addr, err)
		case scheme == "https":
			return nil, fmt.Errorf("admin address %q: the CLI talks to the local admin endpoint over plain HTTP; give its host:port", addr)
		case scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
			return nil, fmt.Errorf("admin address %q: want host:port or http://host:port", addr)
		}
		dial = u.Host
	}
	na, err := caddy.ParseNetworkAddress(dial)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q: want host:port, http://host:port or unix//path (%v)", addr, err)
	}
	c := &adminClient{addr: addr, origin: "http://" + na.JoinHostPort(0), tcp: !na.IsUnixNetwork() && !na.IsFdNetwork()}
	target := na.JoinHostPort(0)
	if !c.tcp {
		// Host 127.0.0.1 for a socket, as caddycmd does; a unix address
		// may end in |permission bits, which are no part of its path.
		c.origin = "http://127.0.0.1"
		if path, _, cut := strings.Cut(na.Host, "|"); cut {
			target = path
		}
	}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, na.Network, target)
		},
		ResponseHeaderTimeout: timeout,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &http.Client{Timeout: timeout, Transport: transport, CheckRedirect: noRedirect}
	c.streaming = &http.Client{Transport: transport, CheckRedirect: noRedirect}
	return c, nil
}

// request makes a request to the admin API, with the headers it wants.
func (c *adminClient) request(method, uri string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, c.origin+uri, body)
	if err != nil {
		return nil, err
	}
	if c.tcp {
		req.Header.Set("Origin", c.origin)
	}
	return req, nil
}

// reachError says why a call to the admin API got no reply.
func (c *adminClient) reachError(method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		if method == http.MethodGet {
			return fmt.Errorf("the admin API at %s did not answer within %v (see --timeout)", c.addr, c.client.Timeout)
		}
		return fmt.Errorf("the admin API at %s did not answer within %v: it may still have done what was asked; "+
			"check (caddy kassa order or operation) before trying again", c.addr, c.client.Timeout)
	}
	if ue != nil {
		err = ue.Err
	}
	return fmt.Errorf("cannot reach the admin API at %s: %v (is Caddy running? is --address right?)", c.addr, err)
}

// stream GETs uri and returns the 2xx reply with its body unread, for the
// caller to stream; any other reply is an *apiError.
func (c *adminClient) stream(uri string) (*http.Response, error) {
	req, err := c.request(http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.streaming.Do(req)
	if err != nil {
		return nil, c.reachError(http.MethodGet, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxCLIReply))
	return nil, replyError(resp.StatusCode, data)
}

// send calls the admin API with extra request headers. A 2xx reply's body
// and headers are returned; any other reply is an *apiError, returned
// along with its body.
func (c *adminClient) send(method, uri string, body any, header http.Header) ([]byte, http.Header, error) {
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		in = bytes.NewReader(b)
	}
	req, err := c.request(method, uri, in)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, c.reachError(method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCLIReply))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the admin API's reply: %v", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, resp.Header, nil
	}
	return data, resp.Header, replyError(resp.StatusCode, data)
}

// replyError reads an error reply: the kassa API's {"error":{"code",
// "message","field"}}, Caddy's own {"error":"..."}, or anything else.
func replyError(status int, data []byte) *apiError {
	e := &apiError{Status: status}
	var envelope struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &envelope) == nil && len(envelope.Error) > 0 {
		var obj struct {
			Code, Message, Field string
		}
		var text string
		if json.Unmarshal(envelope.Error, &obj) == nil && obj.Code != "" {
			e.Code, e.Message, e.Field = obj.Code, obj.Message, obj.Field
			return e
		}
		if json.Unmarshal(envelope.Error, &text) == nil && text != "" {
			e.Message = text
			return e
		}
	}
	e.Message = strings.TrimSpace(string(data))
	if r := []rune(e.Message); len(r) > 200 {
		e.Message = string(r[:200]) + "..."
	}
	if e.Message == "" || !json.Valid(data) && strings.ContainsAny(e.Message, "<\x00") {
		e.Message = http.StatusText(status)
	}
	return e
}

// call calls the admin API and, with --json, prints its reply as it is,
// error replies included. It reports whether the caller should render the
// reply as a table.
func (k *kassaCLI) call(method, uri string, body any) (data []byte, table bool, err error) {
	data, _, table, err = k.callWith(method, uri, body, nil)
	return data, table, err
}

// callWith is call with extra request headers, returning the reply's
// headers too.
func (k *kassaCLI) callWith(method, uri string, body any, header http.Header) (data []byte, reply http.Header, table bool, err error) {
	data, reply, err = k.admin.send(method, uri, body, header)
	if k.json && len(data) > 0 {
		k.out.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			fmt.Fprintln(k.out)
		}
	}
	return data, reply, err == nil && !k.json, err
}

// decodeReply decodes an API reply for a table.
func decodeReply(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("the admin API's reply is not the expected JSON: %v", err)
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes one tab-separated table row; an empty cell shows as "-".
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		cells[i] = oneLine(cells[i])
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// sortedKeys returns a map's keys in order, for deterministic tables.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// balanceReply is GET /kassa/balance.
type balanceReply struct {
	Accounts map[string]struct {
		Provider string            `json:"provider"`
		Balance  string            `json:"balance"`
		Wallets  map[string]string `json:"wallets"`
		Error    *apiError         `json:"error"`
	} `json:"accounts"`
}

// cliBalance: caddy kassa balance. An account that failed shows "error"
// and its reason goes to stderr; the command fails only when no account
// answered.
func cliBalance(k *kassaCLI, _ []string) error {
	data, table, err := k.call(http.MethodGet, "/kassa/balance", nil)
	var reply balanceReply
	if err != nil {
		// When every account fails the reply is an error status that
		// still lists the accounts, each with its reason.
		var ae *apiError
		if !errors.As(err, &ae) || ae.Code != "" || json.Unmarshal(data, &reply) != nil || len(reply.Accounts) == 0 {
			return err
		}
	} else if !table {
		return nil
	} else if err := decodeReply(data, &reply); err != nil {
		return err
	}
	out := k.out
	if k.json { // printed already; only the failures are wanted
		out = io.Discard
	}
	var failures []string
	tw := newTable(out)
	row(tw, "ACCOUNT", "PROVIDER", "BALANCE", "WALLETS")
	for _, name := range sortedKeys(reply.Accounts) {
		a := reply.Accounts[name]
		if a.Error != nil {
			row(tw, name, a.Provider, "error", "")
			failures = append(failures, name+": "+a.Error.Error())
			continue
		}
		var wallets []string
		for _, w := range sortedKeys(a.Wallets) {
			wallets = append(wallets, w+" "+a.Wallets[w])
		}
		row(tw, name, a.Provider, a.Balance, strings.Join(wallets, ", "))
	}
	tw.Flush()
	if err != nil {
		return fmt.Errorf("no payment account answered: %s", strings.Join(failures, "; "))
	}
	for _, f := range failures {
		fmt.Fprintf(k.errOut, "kassa: %s\n", f)
	}
	return nil
}

// orderSummaryReply is an order in GET /kassa/orders.
type orderSummaryReply struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Account      string    `json:"account"`
	Provider     string    `json:"provider"`
	Amount       string    `json:"amount"`
	CreatedAt    time.Time `json:"created_at"`
	ReceiptState string    `json:"receipt_state"`
}

// cliOrders: caddy kassa orders [--state S] [--limit N], or
// caddy kassa orders --shop-order-id ID.
func cliOrders(k *kassaCLI, _ []string) error {
	if k.cmd.Flags().Changed("shop-order-id") {
		return cliShopOrder(k)
	}
	uri, err := listURI("/kassa/orders", k.cmd, func(state string) error {
		if !OrderState(state).Valid() {
			return usageErrorf("--state %q is not an order state: want creating, pending, paid, expired, cancelled or failed", state)
		}
		return nil
	}, "from", "to", "before")
	if err != nil {
		return err
	}
	data, table, err := k.call(http.MethodGet, uri, nil)
	if err != nil || !table {
		return err
	}
	var reply struct {
		Orders []orderSummaryReply `json:"orders"`
		Next   string              `json:"next"`
	}
	if err := decodeReply(data, &reply); err != nil {
		return err
	}
	if len(reply.Orders) == 0 {
		fmt.Fprintln(k.out, "no orders")
	} else {
		tw := newTable(k.out)
		row(tw, "ID", "STATE", "AMOUNT", "ACCOUNT", "CREATED", "RECEIPT")
		for _, o := range reply.Orders {
			row(tw, o.ID, o.State, o.Amount, o.Account, formatTime(o.CreatedAt), o.ReceiptState)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if reply.Next != "" {
		fmt.Fprintf(k.errOut, "kassa: more orders follow: the next page is --before %s\n", reply.Next)
	}
	return nil
}

// cliShopOrder: caddy kassa orders --shop-order-id ID shows the order as
// caddy kassa order does.
func cliShopOrder(k *kassaCLI) error {
	flags := k.cmd.Flags()
	for _, name := range []string{"state", "limit", "from", "to", "before"} {
		if flags.Changed(name) {
			return usageErrorf("--shop-order-id names one order: it takes no --state, --limit, --from, --to or --before")
		}
	}
	shopID, _ := flags.GetString("shop-order-id")
	if !validShopOrderID(shopID) {
		return usageErrorf("--shop-order-id %q: want 1 to %d ASCII letters, digits, dots, underscores, dashes or colons", shopID, maxShopOrderID)
	}
	data, table, err := k.call(http.MethodGet, "/kassa/orders?"+url.Values{"shop_order_id": {shopID}}.Encode(), nil)
	if err != nil || !table {
		return err
	}
	var o Order
	if err := decodeReply(data, &o); err != nil {
		return err
	}
	return printOrder(k.out, &o)
}

// formatTime shows a time to the second, in the zone the API gave.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05Z07:00")
}

func orderURI(id string) string { return "/kassa/orders/" + url.PathEscape(id) }

// cliOrder: caddy kassa order ID.
func cliOrder(k *kassaCLI, args []string) error {
	data, table, err := k.call(http.MethodGet, orderURI(args[0]), nil)
	if err != nil || !table {
		return err
	}
	var o Order
	if err := decodeReply(data, &o); err != nil {
		return err
	}
	return printOrder(k.out, &o)
}

// printOrder writes an order as "key: value" lines, then its items.
func printOrder(w io.Writer, o *Order) error {
	tw := newTable(w)
	field := func(key, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", key, oneLine(value))
		}
	}
	field("id", o.ID)
	field("state", string(o.State))
	field("account", o.Account+" ("+o.Provider+")")
	field("amount", FormatAmount(o.Amount))
	if o.PaidAmount.Valid {
		field("paid amount", FormatAmount(o.PaidAmount.Decimal))
	}
	field("description", o.Description)
	field("shop order id", o.ShopOrderID)
	field("email", o.Email)
	field("phone", o.Phone)
	field("payment id", o.Payment.ID)
	field("payment url", o.Payment.URL)
	field("pay to wallet", o.Payment.Wallet)
	field("pay to card", o.Payment.Card)
	if !o.Payment.Commission.IsZero() {
		field("commission", FormatAmount(o.Payment.Commission))
	}
	field("created", formatTime(o.CreatedAt))
	field("updated", formatTime(o.UpdatedAt))
	field("expires", formatTime(o.ExpiresAt))
	field("paid", formatTime(o.PaidAt))
	field("closed", formatTime(o.ClosedAt))
	field("error", o.Error)
	for _, r := range []struct {
		name string
		rec  *OrderReceipt
	}{{"receipt", o.Receipt}, {"refund", o.Refund}} {
		if r.rec == nil {
			if r.name == "receipt" {
				field("receipt", "none")
			}
			continue
		}
		field(r.name, fmt.Sprintf("%s, %s, operation %s, %d attempt(s)", r.rec.State, r.rec.Type, r.rec.OperationID, r.rec.Attempts))
		field(r.name+" fiscal", formatFiscal(r.rec.Fiscal))
		field(r.name+" error", r.rec.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(o.Items) == 0 {
		return nil
	}
	fmt.Fprintln(w, "items:")
	tw = newTable(w)
	row(tw, "  SKU", "NAME", "QTY", "PRICE", "VAT", "SUM")
	for _, it := range o.Items {
		vat := ""
		if it.VAT != 0 {
			vat = it.VAT.String()
		}
		sku := it.SKU
		if sku == "" {
			sku = "-"
		}
		row(tw, "  "+sku, it.Name, strconv.FormatInt(it.Qty, 10), FormatAmount(it.Price), vat,
			FormatAmount(it.Price.Mul(decimal.NewFromInt(it.Qty))))
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s) }

// formatFiscal writes a receipt's fiscal data on one line.
func formatFiscal(f *FiscalParams) string {
	if f == nil {
		return ""
	}
	parts := []string{
		"FN " + f.FNNumber,
		"FD " + strconv.FormatInt(f.DocumentNumber, 10),
		"FP " + f.DocumentSign,
		"shift " + strconv.FormatInt(f.ShiftNumber, 10),
		"receipt " + strconv.FormatInt(f.ReceiptNumber, 10),
	}
	if !f.DocumentTime.IsZero() {
		parts = append(parts, formatTime(f.DocumentTime))
	}
	if f.RegistrationNumber != "" {
		parts = append(parts, "RN "+f.RegistrationNumber)
	}
	if f.NotPrinted {
		parts = append(parts, "not printed")
	}
	if f.FNSURL != "" {
		parts = append(parts, f.FNSURL)
	}
	return strings.Join(parts, ", ")
}

// cliEvents lists events: their id, type, order, state and the latest
// delivery error.
func cliEvents(k *kassaCLI, _ []string) error {
	uri, err := listURI("/kassa/events", k.cmd, func(state string) error {
		if state != deliveryPending && state != deliveryDelivered && state != deliveryFailed {
			return usageErrorf("--state %q is not an event state: want pending, delivered or failed", state)
		}
		return nil
	})
	if err != nil {
		return err
	}
	data, table, err := k.call(http.MethodGet, uri, nil)
	if err != nil || !table {
		return err
	}
	var reply struct {
		Events []eventView `json:"events"`
	}
	if err := decodeReply(data, &reply); err != nil {
		return err
	}
	if len(reply.Events) == 0 {
		fmt.Fprintln(k.out, "no events")
		return nil
	}
	tw := newTable(k.out)
	row(tw, "ID", "TYPE", "STATE", "CREATED", "ATTEMPTS", "LAST ERROR")
	for _, e := range reply.Events {
		attempts, lastError := 0, ""
		for _, t := range e.Targets {
			attempts += t.Attempts
			if t.LastError != "" {
				lastError = t.LastError
			}
		}
		row(tw, e.ID, string(e.Type), e.State, formatTime(e.CreatedAt), strconv.Itoa(attempts), oneLine(lastError))
	}
	return tw.Flush()
}

// cliRedeliver puts an event back on its way to its receivers.
func cliRedeliver(k *kassaCLI, args []string) error {
	data, table, err := k.call(http.MethodPost, "/kassa/events/"+url.PathEscape(args[0])+"/redeliver", nil)
	if err != nil || !table {
		return err
	}
	var e eventView
	if err := decodeReply(data, &e); err != nil {
		return err
	}
	fmt.Fprintf(k.out, "event %s (%s) is %s again\n", e.ID, e.Type, e.State)
	return nil
}

// orderAction: caddy kassa cancel|confirm|receipt|refund ID, with the
// request's body, if any.
func (k *kassaCLI) orderAction(id, action string, body any) error {
	data, table, err := k.call(http.MethodPost, orderURI(id)+"/"+action, body)
	if err != nil || !table {
		return err
	}
	var o Order
	if err := decodeReply(data, &o); err != nil {
		return err
	}
	switch action {
	case "receipt", "refund":
		rec, what := o.Receipt, "receipt"
		if action == "refund" {
			rec, what = o.Refund, "refund receipt"
		}
		if rec == nil {
			fmt.Fprintf(k.out, "order %s: %s requested\n", o.ID, what)
			return nil
		}
		fmt.Fprintf(k.out, "order %s: %s %s (operation %s)\n", o.ID, what, rec.State.Public(), rec.OperationID)
	default:
		fmt.Fprintf(k.out, "order %s is now %s\n", o.ID, o.State)
	}
	return nil
}

// requiredFlag returns a string flag's value, or a usage error when it is
// missing or blank.
func requiredFlag(cmd *cobra.Command, name string) (string, error) {
	v, _ := cmd.Flags().GetString(name)
	if strings.TrimSpace(v) == "" {
		return "", usageErrorf("%s needs --%s", cmd.CommandPath(), name)
	}
	return v, nil
}

// amountFlag returns --amount as given, checked as the API checks it.
func amountFlag(cmd *cobra.Command) (string, error) {
	v, err := requiredFlag(cmd, "amount")
	if err != nil {
		return "", err
	}
	amount, err := ParseAmount("--amount", v)
	if err != nil {
		return "", usageError{err.Error()}
	}
	if amount.IsZero() {
		return "", usageErrorf("--amount must be more than 0")
	}
	return v, nil
}

// showAmount writes an amount amountFlag accepted with two decimals.
func showAmount(s string) string {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return s
	}
	return FormatAmount(d)
}

// cliPayout: caddy kassa payout. It sends the payout under a new
// idempotency key, or under --idempotency-key to repeat an earlier one,
// and names the key whenever a repeat may be needed.
func cliPayout(k *kassaCLI, _ []string) error {
	var req struct {
		Payment string `json:"payment"`
		Amount  string `json:"amount"`
		To      string `json:"to"`
		Method  string `json:"method"`
		Comment string `json:"comment,omitempty"`
		OrderID string `json:"order_id,omitempty"`
	}
	var err error
	if req.Payment, err = requiredFlag(k.cmd, "payment"); err != nil {
		return err
	}
	if req.Amount, err = amountFlag(k.cmd); err != nil {
		return err
	}
	if req.To, err = requiredFlag(k.cmd, "to"); err != nil {
		return err
	}
	if req.Method, err = requiredFlag(k.cmd, "method"); err != nil {
		return err
	}
	req.Comment, _ = k.cmd.Flags().GetString("comment")
	req.OrderID, _ = k.cmd.Flags().GetString("order-id")
	key := newPayoutKey()
	if k.cmd.Flags().Changed("idempotency-key") {
		key, _ = k.cmd.Flags().GetString("idempotency-key")
		if err := ValidIdempotencyKey(key); err != nil {
			return usageErrorf("--idempotency-key: %v", err)
		}
	}
	data, reply, table, err := k.callWith(http.MethodPost, "/kassa/payouts", req, http.Header{"Idempotency-Key": {key}})
	var ae *apiError
	if err != nil && (!errors.As(err, &ae) || ae.Code == "payout_outcome_unknown" || ae.Code == "payout_in_progress" || ae.Code == "payout_outcome_pending") {
		return fmt.Errorf("%w (idempotency key %s: to learn the payout's outcome, re-run this command with "+
			"--idempotency-key %s and the same arguments, which pays at most once)", err, key, key)
	}
	if err != nil || !table {
		return err
	}
	var out struct {
		Payment     string `json:"payment"`
		ID          string `json:"id"`
		Commission  string `json:"commission"`
		PayoutState string `json:"payout_state"`
		Message     string `json:"message"`
	}
	if err := decodeReply(data, &out); err != nil {
		return err
	}
	id, commission := out.ID, out.Commission
	if id == "" {
		id = "none given"
	}
	if commission == "" {
		commission = "unknown"
	}
	if out.PayoutState != "" {
		id += " (" + out.PayoutState + ")"
	}
	verb := "accepted"
	if reply.Get("Idempotent-Replayed") == "true" {
		verb = "already made under this key, not paid again"
	}
	fmt.Fprintf(k.out, "payout of %s from %s to %s (%s) %s: id %s, commission %s, idempotency key %s\n",
		showAmount(req.Amount), out.Payment, req.To, req.Method, verb, id, commission, key)
	if out.Message != "" {
		fmt.Fprintf(k.out, "note: %s\n", oneLine(out.Message))
	}
	return nil
}

// cliPayoutStatus: caddy kassa payout-status ID [--payment ACCOUNT].
func cliPayoutStatus(k *kassaCLI, args []string) error {
	id := args[0]
	if !validPayoutID(id) {
		return usageErrorf("payout id %q: want 1 to %d ASCII letters, digits, dots, underscores or dashes", id, maxPayoutToken)
	}
	uri := "/kassa/payouts/" + id
	if k.cmd.Flags().Changed("payment") {
		account, err := requiredFlag(k.cmd, "payment")
		if err != nil {
			return err
		}
		uri += "?" + url.Values{"payment": {account}}.Encode()
	}
	data, table, err := k.call(http.MethodGet, uri, nil)
	if err != nil || !table {
		return err
	}
	var reply payoutView
	if err := decodeReply(data, &reply); err != nil {
		return err
	}
	tw := newTable(k.out)
	for _, kv := range [][2]string{
		{"payment", reply.Payment}, {"payout", reply.ID}, {"state", string(reply.State)}, {"commission", reply.Commission},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], oneLine(kv[1]))
		}
	}
	return tw.Flush()
}

// newPayoutKey is a new random idempotency key for a payout: 128 bits
// from crypto/rand as 32 hex characters.
func newPayoutKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead
	return hex.EncodeToString(b[:])
}

// cash: caddy kassa cash deposit|withdraw.
func (k *kassaCLI) cash(direction string) error {
	var req struct {
		Amount      string `json:"amount"`
		CashboxID   string `json:"cashbox_id,omitempty"`
		OperationID string `json:"operation_id,omitempty"`
	}
	var err error
	if req.Amount, err = amountFlag(k.cmd); err != nil {
		return err
	}
	req.CashboxID, _ = k.cmd.Flags().GetString("cashbox")
	req.OperationID, _ = k.cmd.Flags().GetString("operation-id")
	data, table, err := k.call(http.MethodPost, "/kassa/cash/"+direction, req)
	if err != nil || !table {
		return err
	}
	var reply struct {
		OperationID string `json:"operation_id"`
		State       string `json:"state"`
	}
	if err := decodeReply(data, &reply); err != nil {
		return err
	}
	fmt.Fprintf(k.out, "cash %s of %s %s: operation %s (see: caddy kassa operation %s)\n",
		direction, showAmount(req.Amount), reply.State, reply.OperationID, reply.OperationID)
	return nil
}

// cliOperation: caddy kassa operation ID.
func cliOperation(k *kassaCLI, args []string) error {
	data, table, err := k.call(http.MethodGet, "/kassa/operations/"+url.PathEscape(args[0]), nil)
	if err != nil || !table {
		return err
	}
	var reply struct {
		OperationID string        `json:"operation_id"`
		State       string        `json:"state"`
		Fiscal      *FiscalParams `json:"fiscal"`
		Error       string        `json:"error"`
	}
	if err := decodeReply(data, &reply); err != nil {
		return err
	}
	tw := newTable(k.out)
	for _, kv := range [][2]string{
		{"operation", reply.OperationID}, {"state", reply.State},
		{"fiscal", formatFiscal(reply.Fiscal)}, {"error", reply.Error},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], oneLine(kv[1]))
		}
	}
	return tw.Flush()
}

// listURI is the admin API's URI of a listing command: path with its
// --state, which checkState vets, its --limit (1 to 1000), and the string
// flags named in params, passed on as the parameters of their names.
func listURI(path string, cmd *cobra.Command, checkState func(string) error, params ...string) (string, error) {
	flags := cmd.Flags()
	q := url.Values{}
	for _, name := range params {
		if flags.Changed(name) {
			v, _ := flags.GetString(name)
			if v == "" {
				return "", usageErrorf("--%s is empty", name)
			}
			q.Set(name, v)
		}
	}
	if state, _ := flags.GetString("state"); state != "" {
		if err := checkState(state); err != nil {
			return "", err
		}
		q.Set("state", state)
	}
	if flags.Changed("limit") {
		limit, _ := flags.GetInt("limit")
		if limit < 1 || limit > 1000 {
			return "", usageErrorf("--limit %d: want a whole number from 1 to 1000", limit)
		}
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path, nil
}
