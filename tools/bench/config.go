package main

import (
	"fmt"
	"strconv"
	"time"
)

// providerCaddyfile is the sandbox in its zero-latency mode: no latency
// added to any call, receipts done at once.
func providerCaddyfile(adminPort, port int) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}

http://:%d {
	bind 127.0.0.1
	kassa_sandbox {
		latency 0s
		receipt_delay 0s
	}
}
`, adminPort, port)
}

// The routes of the shop, and what the harness sends them.
const (
	respondPath  = "/respond"
	proxyPath    = "/proxy"
	checkoutPath = "/pay"
	// checkoutForm is a plain HTML form's post: two products, an email.
	checkoutForm = "item=tea-green:2&item=cup&email=buyer@example.com"
)

// shopCaddyfile is the shop: respond, a reverse_proxy to the sandbox's
// CrystalPAY generate, and kassa_checkout on the sandbox's CrystalPAY,
// storing orders in storageDir. pollInterval is the reconciler's period;
// notify, if not empty, is a notify block for the kassa option. Its cap on
// open orders is off: the checkout figure leaves more orders pending than
// the default max_open_orders.
func shopCaddyfile(adminPort, port, providerPort int, storageDir string, pollInterval time.Duration, notify string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	persist_config off
	kassa {
		payment main crystalpay {
			api v1
			login sandbox
			secret sandbox-secret
			secret2 sandbox-secret2
			endpoint http://127.0.0.1:%[3]d/crystalpay/api.php
		}
		product tea-green 350.00 "Green tea 100 g" vat20
		product cup 120.00 "Cup"
		poll_interval %[5]s
		order_ttl 24h
		max_open_orders off
		storage file_system %[4]s
		%[9]s
	}
}

http://:%[2]d {
	bind 127.0.0.1
	handle %[6]s {
		respond "ok"
	}
	handle %[7]s {
		rewrite * /crystalpay/api.php?s=sandbox-secret&n=sandbox&o=generate&amount=820
		reverse_proxy 127.0.0.1:%[3]d
	}
	handle %[8]s {
		kassa_checkout main
	}
}
`, adminPort, port, providerPort, strconv.Quote(storageDir), pollInterval, respondPath, proxyPath, checkoutPath, notify)
}
