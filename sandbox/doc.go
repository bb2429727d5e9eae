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
//	POST      /crystalpay/v3/{group}/{action}/  CrystalPAY API v3 (below)
//	GET|POST  /pegas/api/v1/{call}               Pegas-kassa REST API
//	*         /smartcashier/v1.0/operations/...  Smart Cashier v1.0
//	GET|POST  /pay/crystalpay/{id}               payment page of a CrystalPAY invoice (v1 or v3)
//	GET|POST  /pay/pegas/{id}                    payment page of a Pegas invoice
//	*         /control/...                       control endpoint (below)
//
// Any other path is answered 404. Payment links in API replies start with
// public_url, or with the scheme and Host of the API request.
//
// Unless configured otherwise the simulated providers accept CrystalPAY login
// "sandbox" with secret key 1 "sandbox-secret" and secret key 2
// "sandbox-secret2", CrystalPAY v3 salt "sandbox-salt", Pegas-kassa token "sandbox-token" and Smart Cashier
// bearer token "sandbox-token".
//
// Beyond PROVIDERS.md, the simulator refuses what the real services would
// also refuse or what a careful client never sends: repeated query
// parameters, a Smart Cashier body without Content-Type application/json
// (415, as ASP.NET does) and a Pegas POST body that is not a JSON object
// (parsing_error). CrystalPAY and Pegas replies escape slashes and non-ASCII
// characters the way PHP's json_encode does.
//
// # CrystalPAY API v3
//
// The v3 API as its public documentation and client libraries show it: me/info,
// balance/list, balance/get, invoice/create, invoice/info, payoff/create,
// payoff/submit, payoff/cancel and payoff/info. Every call is a POST of a
// JSON object (Content-Type application/json) carrying auth_login and
// auth_secret (crystalpay_login and crystalpay_secret); another method is
// answered 405, a path without its trailing slash 404. Every other reply is
// HTTP 200: {"error":false,"errors":[],...} on success, and on failure
// {"error":true,"errors":["..."]}, naming a missing or invalid field in
// backquotes as the documentation's "`amount` field is required" does.
// Numbers (amount, lifetime) may be JSON numbers or numeric strings; reply
// amounts are decimal strings, absent values null, times "2006-01-02
// 15:04:05". The v3 balance is the CrystalPAY balance of v1: method
// LZTMARKET (RUB) in balance/list, beside an empty BITCOIN. Payoffs are
// signed with sha1 over "amount:method:wallet:salt" (the amount as the
// client wrote it: below), submit and cancel
// with sha1 over "id:salt" (crystalpay_salt). A payoff is created, then
// processing from submit (which debits the balance) for a second, then
// payed; a created payoff may be canceled.
//
// An invoice or payoff made with a callback_url is called back when it
// reaches a final state (invoices: payed, wrongamount, failed; payoffs:
// payed, failed, canceled): a POST of its invoice/info or payoff/info
// object without error and errors, plus "signature": sha1(id + ":" + salt).
// Anything but a 200 is retried. Deliveries run in goroutines that the
// handler's Cleanup stops, so a config reload cuts short the retries of the
// old handler.
//
// Where the provider's documentation is silent the sandbox makes its own
// choices, none of them the provider's documented behaviour:
//
//   - Error texts (bad credentials, unknown ids, "Invalid signature",
//     "Insufficient funds") are the sandbox's own wording.
//   - Only RUB is taken (currency, or amount_currency, its older name, for
//     both invoices and payoffs): other currencies would need made-up rates.
//     RUB amounts are positive, plain decimals with at most 2 decimals, at
//     most 1000000.
//   - lifetime is 1 to 4320 minutes: 4320 is the v2-era maximum.
//   - payer_details may be an object, an array or a string.
//   - Unknown body fields are ignored; a path without the trailing slash is
//     not found.
//   - Times are in Moscow time (UTC+3).
//   - Invoices carry no commission, so subtract_from changes nothing and
//     balance_amount is the amount; payoffs carry a 1% commission, taken
//     from the amount (subtract_from amount) or on top of it (balance).
//   - An invoice past its expired_at cannot be paid (the page says it
//     expired and control/pay answers 409); invoice/info keeps its last
//     state. The state unavailable that some clients list is undocumented
//     and never given.
//   - The payer's method becomes the invoice's required_method, or
//     LZTMARKET, once it is processing or paid.
//   - Only payed credits the balance (wrongamount credits nothing); a failed
//     payoff gives its deduction back.
//   - Callbacks are retried 1 s, 5 s and 30 s after a failed delivery, each
//     delivery bounded by 10 s; a redirect is a failure. Invoices are
//     called back in every final state (payed, wrongamount, failed), not
//     only payed, and canceled payoffs too: the spec does not say which
//     states CrystalPAY calls back (its open question 5).
//   - A payoff's signature is checked over the amount exactly as the
//     client wrote it, so 350.5 and 350.50 sign differently: the spec does
//     not say which canonical form CrystalPAY signs (its open question 11).
//
// # Control endpoint
//
// JSON in and out. A bad request is answered 400 {"error":"..."}, an unknown
// route 404 {"error":"..."}, a wrong method 405 {"error":"..."}.
//
//	GET    /control/state     {"crystalpay":{"balance":"1000","invoices":[...],"withdrawals":[...],
//	                           "v3_invoices":[...],"payoffs":[...]},
//	                           "pegas":{"balance":"0.00","invoices":[...],"withdrawals":[...]},
//	                           "smartcashier":{"operations":[...],"cash":{"<cashboxId>":"500.00"}},
//	                           "settings":{...}}; amounts are strings, each Smart Cashier
//	                           operation carries "request": its body as received (compacted)
//	GET    /control/calls     ?api=crystalpay|pegas|smartcashier&op=<op> (both optional):
//	                           {"calls":[{"api","op","method","path","query":{...},"body":<JSON or null>,
//	                           "status":200,"fault":"malformed","time":"..."}]}, oldest first, at most
//	                           the last 10000; status 0 means no reply was sent (timeout, drop faults);
//	                           fault, if present, is the mode of the fault that answered instead of
//	                           the API: such a call did nothing, even with status 200; a CrystalPAY
//	                           v3 callback delivery is journaled as op "callback" with "url" (no
//	                           query), "attempt" (from 1) and the status the shop answered (0: none)
//	DELETE /control/calls     clears the journal: {"cleared":<n>}
//	GET    /control/faults    {"faults":[{"api","op","mode","count","latency","message"}]}
//	POST   /control/faults    {"api":"smartcashier","op":"formReceipt","mode":"error500","count":2,
//	                           "latency":"2s","message":"..."} adds a fault, answers {"fault":{...}}
//	DELETE /control/faults    clears every fault: {"cleared":<n>}
//	POST   /control/pay       {"api":"crystalpay","id":"1_..."} or {"api":"pegas","id":100001}
//	                           or {"api":"pegas","order_id":"..."}: pays the invoice exactly like the
//	                           payment page's button (a CrystalPAY v3 id too); {"invoice":{...}};
//	                           404 unknown, 409 cancelled, expired, failed or wrongamount
//	POST   /control/invoice   {"id":"123456789_...","state":"processing"|"failed"} or
//	                           {"id":"...","state":"wrongamount","amount":"50.00"} (the sum paid):
//	                           moves a CrystalPAY v3 invoice that is notpayed (or processing, to a
//	                           final state), calling back on a final state; {"invoice":{...}}
//	POST   /control/payoff    {"id":"123456789_...","state":"payed"|"failed"}: ends a processing
//	                           CrystalPAY v3 payoff now; {"payoff":{...}}; 409 if not processing
//	POST   /control/callback  {"id":"..."}: sends the callback of a CrystalPAY v3 invoice or payoff
//	                           now, in its current state: {"callback":{"id","url"}} (url without its
//	                           query); 404 unknown, 409 no callback_url
//	GET    /control/settings  {"latency":"0s","receipt_delay":"1s","crystalpay_wallets":false}
//	POST   /control/settings  same object, every field optional; answers the settings now in force
//	POST   /control/reset     forgets invoices, withdrawals, operations, cash, journal and faults,
//	                           restores the configured balances, settings and Caddyfile faults
//	                           and restarts the id counters: {"reset":true}
//
// # Faults
//
// A fault names an api (crystalpay, pegas, smartcashier), an op (crystalpay
// balance, generate, checkpay, withdraw, the v3 group/action names such as
// invoice/create or payoff/submit, and callback; pegas deposit, deposit/cancel,
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
//	forgedcallback  crystalpay callback only (and the only mode it takes): the next
//	              CrystalPAY v3 callbacks are signed with a wrong salt
//
// A fault's latency, if set, is also waited before any other mode. Its
// message, if set, replaces the default text where the reply has one: the
// Pegas error message, the Smart Cashier 500 detail, CrystalPAY's
// error_message for forbidden (v3: the error for auth and forbidden), the
// errorMessage of notprocessed. A * fault never touches callbacks.
//
// Every API call is journaled with the status it got; a fault is applied
// before authentication and parameters are checked, so a faulted call
// creates nothing. Secrets appear in the journal exactly as sent, except
// auth_secret and signature in a JSON body (CrystalPAY v3 calls and
// callbacks), shown as "***".
//
// # State
//
// Invoices, operations, balances, the journal and faults live in a
// process-wide pool keyed by the name option, so they survive a config
// reload. A reload that changes a setting, a balance or the list of faults in
// the Caddyfile applies that change; everything else is kept.
package sandbox
