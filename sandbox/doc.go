// Package sandbox is an offline simulator of the three provider APIs that
// caddy-kassa speaks: CrystalPAY, Pegas-kassa and Smart Cashier. It is the
// Caddy HTTP handler module http.handlers.kassa_sandbox (Caddyfile directive
// kassa_sandbox).
//
// It is for development and tests only. No money moves, nothing leaves the
// machine, and the control endpoint lets anyone who can reach it change
// balances, mark invoices paid and inject faults: never expose it on a public
// site.
//
// The simulator is as strict as the real services, so that it catches wire
// format mistakes in a client: unknown, missing, repeated and ill-typed
// parameters are refused the way each provider refuses them, Smart Cashier
// bodies are decoded with unknown fields disallowed and receipt sums checked to
// the kopeck, and operations are idempotent by operationId: a repeated
// operationId answers the first result and processes nothing, whatever
// became of the operation (one the till failed stays failed), as the
// vendor's document says. Smart Cashier takes taxType codes 1 to 6, the
// document's; smartcashier_tax_types adds the codes an account has for the
// rates of 2026.
//
// # Routes
//
// All paths are relative to the site the handler is mounted on:
//
//	GET       /crystalpay/api.php?s=&n=&o=...   CrystalPAY API v1
//	GET|POST  /pegas/api/v1/{call}               Pegas-kassa REST API
//	*         /smartcashier/v1.0/operations/...  Smart Cashier v1.0
//	GET|POST  /pay/crystalpay/{id}               payment page of a CrystalPAY invoice
//	GET|POST  /pay/pegas/{id}                    payment page of a Pegas invoice
//	*         /control/...                       control endpoint (below)
//
// Any other path is answered 404. Payment links in API replies start with
// public_url, or with the scheme and Host of the API request.
//
// Unless configured otherwise the simulated providers accept CrystalPAY login
// "sandbox" with secret key 1 "sandbox-secret" and secret key 2
// "sandbox-secret2", Pegas-kassa token "sandbox-token" and Smart Cashier
// bearer token "sandbox-token".
//
// Beyond PROVIDERS.md, the simulator refuses what the real services would
// also refuse or what a careful client never sends: repeated query
// parameters, a Smart Cashier body without Content-Type application/json
// (415, as ASP.NET does) and a Pegas POST body that is not a JSON object
// (parsing_error). CrystalPAY and Pegas replies escape slashes and non-ASCII
// characters the way PHP's json_encode does.
//
// # Control endpoint
//
// JSON in and out. A bad request is answered 400 {"error":"..."}, an unknown
// route 404 {"error":"..."}, a wrong method 405 {"error":"..."}.
//
//	GET    /control/state     {"crystalpay":{"balance":"1000","invoices":[...],"withdrawals":[...]},
//	                           "pegas":{"balance":"0.00","invoices":[...],"withdrawals":[...]},
//	                           "smartcashier":{"operations":[...],"cash":{"<cashboxId>":"500.00"}},
//	                           "settings":{...}}; amounts are strings, each Smart Cashier
//	                           operation carries "request": its body as received (compacted)
//	GET    /control/calls     ?api=crystalpay|pegas|smartcashier&op=<op> (both optional):
//	                           {"calls":[{"api","op","method","path","query":{...},"body":<JSON or null>,
//	                           "status":200,"fault":"malformed","time":"..."}]}, oldest first, at most
//	                           the last 10000; status 0 means no reply was sent (timeout, drop faults);
//	                           fault, if present, is the mode of the fault that answered instead of
//	                           the API: such a call did nothing, even with status 200
//	DELETE /control/calls     clears the journal: {"cleared":<n>}
//	GET    /control/faults    {"faults":[{"api","op","mode","count","latency","message"}]}
//	POST   /control/faults    {"api":"smartcashier","op":"formReceipt","mode":"error500","count":2,
//	                           "latency":"2s","message":"..."} adds a fault, answers {"fault":{...}}
//	DELETE /control/faults    clears every fault: {"cleared":<n>}
//	POST   /control/pay       {"api":"crystalpay","id":"1_..."} or {"api":"pegas","id":100001}
//	                           or {"api":"pegas","order_id":"..."}: pays the invoice exactly like the
//	                           payment page's button; {"invoice":{...}}; 404 unknown, 409 cancelled
//	GET    /control/settings  {"latency":"0s","receipt_delay":"1s","crystalpay_wallets":false}
//	POST   /control/settings  same object, every field optional; answers the settings now in force
//	POST   /control/reset     forgets invoices, withdrawals, operations, cash, journal and faults,
//	                           restores the configured balances, settings and Caddyfile faults
//	                           and restarts the id counters: {"reset":true}
//
// # Faults
//
// A fault names an api (crystalpay, pegas, smartcashier), an op (crystalpay
// balance, generate, checkpay, withdraw; pegas deposit, deposit/cancel,
// withdrawal, transaction/receipt/file, balance; smartcashier formReceipt,
// depositCash, withdrawCash, checkStatus; or * for all of them), a mode and a
// count: how many of the next matching calls it applies to (0: until
// cleared). Faults are checked before authentication and parameters. The
// modes:
//
//	latency       wait "latency", then answer normally
//	error500      HTTP 500 in the API's own style
//	timeout       never answer: hold the request until the client leaves (or 60 s)
//	malformed     200, Content-Type application/json, a truncated body {"id":"1_ab
//	html          502 with an HTML page, as from a broken proxy in front of the API
//	auth          the API's own authentication error
//	forbidden     Pegas 403 access_denied, Smart Cashier 403, CrystalPAY error "Access denied"
//	drop          close the connection without answering
//	notprocessed  Smart Cashier formReceipt/depositCash/withdrawCash: accepted (200), but
//	              the operation ends in status 3 with errorMessage "message"
//
// A fault's latency, if set, is also waited before any other mode. Its
// message, if set, replaces the default text where the reply has one: the
// Pegas error message, the Smart Cashier 500 detail, CrystalPAY's
// error_message for forbidden, the errorMessage of notprocessed.
//
// Every API call is journaled with the status it got; a fault is applied
// before authentication and parameters are checked, so a faulted call
// creates nothing. Secrets appear in the journal exactly as sent.
//
// # State
//
// Invoices, operations, balances, the journal and faults live in a
// process-wide pool keyed by the name option, so they survive a config
// reload. A reload that changes a setting, a balance or the list of faults in
// the Caddyfile applies that change; everything else is kept.
package sandbox
