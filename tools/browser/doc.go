// Package browser holds the real-browser test of the demo storefront: it
// runs example/Caddyfile's shop and sandbox in the development Caddy build
// and buys in it with headless Chromium (driven by chromedp), once with
// JavaScript (cart, JSON checkout, status polling, receipt) and once
// without (a plain form per product). It has no code of its own. It lives
// in the tools module, so that chromedp stays out of the plugin's go.mod.
// From tools/:
//
//	go test ./browser/                   # needs chromium ($CHROMIUM or /usr/bin/chromium); skips without it
//	go test ./browser/ -screenshots      # also rewrites docs/screenshots/*.png
package browser
