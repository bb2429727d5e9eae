package kassa

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
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
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (r.TLS != nil && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
