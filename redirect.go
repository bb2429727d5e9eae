package kassa

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2"
)

// redirectOrigin is the part of a redirect template that no placeholder
// may fill: its scheme and host with its port, parsed from the template
// with every placeholder left out. A template whose scheme or host is (in
// part) a placeholder, or that has userinfo, is refused: a buyer could
// send the paid redirect to another site.
func redirectOrigin(template string) (*url.URL, error) {
	fixed, err := url.Parse(caddy.NewEmptyReplacer().ReplaceAll(template, ""))
	if err != nil || (fixed.Scheme != "http" && fixed.Scheme != "https") || fixed.Host == "" || fixed.User != nil ||
		!strings.HasPrefix(template, fixed.Scheme+"://"+fixed.Host) {
		return nil, fmt.Errorf("kassa_checkout: redirect %q: want an absolute http:// or https:// URL with no userinfo, "+
			"whose scheme and host are written out: a placeholder there would let a buyer send the redirect to another site", template)
	}
	return fixed, nil
}

// returnURL expands the redirect template for a request. A buyer may fill
// its placeholders (the query's, say) but not move it: the result keeps
// the template's scheme, host and port and has no userinfo and no control
// character, or the checkout is 400 bad_redirect. {kassa.order_id}, not
// yet known, is left as it is; it cannot reach the host (redirectOrigin).
func (h *Checkout) returnURL(repl *caddy.Replacer) (string, error) {
	origin, err := redirectOrigin(h.Redirect)
	if err != nil {
		return "", err
	}
	expanded := repl.ReplaceKnown(h.Redirect, "")
	u, err := url.Parse(expanded)
	if strings.ContainsFunc(expanded, unicode.IsControl) || err != nil || u.User != nil ||
		!strings.EqualFold(u.Scheme, origin.Scheme) || !strings.EqualFold(u.Host, origin.Host) {
		return "", badRequest("bad_redirect", "", "the page to return to after paying must stay on %s", origin.Host)
	}
	return expanded, nil
}
