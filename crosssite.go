package kassa

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// sameSiteJSON refuses a request that a hostile page could make a browser
// on the shop's trusted network send: one from another site's page (a
// foreign Origin, or Sec-Fetch-Site: cross-site) is 403 cross_site, and a
// body that is not application/json is 415, since only a JSON content type
// makes a browser ask a CORS preflight before it sends anything.
func sameSiteJSON(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" || !sameOrigin(r) {
		return &RequestError{Status: http.StatusForbidden, Code: "cross_site",
			Message: "this route takes no requests from another site's pages"}
	}
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType != "application/json" {
		return &RequestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send the body as application/json"}
	}
	return nil
}

// sameOrigin reports whether r's Origin, when it has one, is r's own host
// (with its port). The scheme counts only for a request that came over TLS:
// behind a proxy that ends TLS, an https page's request arrives as plain
// HTTP. An opaque origin ("null") is foreign.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || isRequestHost(r, origin)
}

// isRequestHost reports whether origin is r's own host, as sameOrigin
// judges it.
func isRequestHost(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (r.TLS != nil && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// fromAllowedOrigin reports whether r comes from a page of the shop itself
// or of one of the allowed origins. Its Origin decides; without one, its
// Referer's origin. A request that names neither is let through (a
// backend, curl, an address the buyer typed) unless the browser says it
// came from another site's page (Sec-Fetch-Site): a page can make a GET
// with no Origin and no Referer, such as <img referrerpolicy="no-referrer">.
func fromAllowedOrigin(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if r.Referer() == "" {
			site := r.Header.Get("Sec-Fetch-Site")
			return site != "cross-site" && site != "same-site"
		}
		ref, err := url.Parse(r.Referer())
		if err != nil || ref.Host == "" {
			return false
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	return isRequestHost(r, origin) || slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, origin) })
}

// checkOrigin refuses an allowed origin that is not scheme://host[:port]
// with an http or https scheme, as browsers send it in Origin: one they
// never send (an IDN host not in punycode, the scheme's default port
// written out) would match nothing.
func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], like https://shop.example.com", origin)
	}
	if strings.ContainsFunc(u.Host, func(r rune) bool { return r > unicode.MaxASCII }) {
		return fmt.Errorf("%q: write the host in punycode (xn--…), as browsers send it in Origin", origin)
	}
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		return fmt.Errorf("%q: browsers leave the default port out of Origin; write %s://%s", origin, u.Scheme, strings.TrimSuffix(u.Host, ":"+port))
	}
	return nil
}

// parseOrigins reads `allowed_origins <origin>...`, checking each.
func parseOrigins(d *caddyfile.Dispenser, origins *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	for _, origin := range args {
		if err := checkOrigin(origin); err != nil {
			return d.Errf("allowed_origins: %v", err)
		}
	}
	*origins = append(*origins, args...)
	return nil
}
