package kassa

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseOneArg reads a subdirective's single argument into dst, refusing a
// second argument and a subdirective given twice.
func parseOneArg(d *caddyfile.Dispenser, dst *string) error {
	if *dst != "" {
		return d.Errf("%s given twice", d.Val())
	}
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if *dst == "" {
		return d.Errf("%s must not be empty", d.Val())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseDuration reads a subdirective's single duration argument into dst.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	if *dst != 0 {
		return d.Errf("%s given twice", name)
	}
	var raw string
	if err := parseOneArg(d, &raw); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", name, raw, err)
	}
	if dur <= 0 {
		return d.Errf("%s must be more than zero", name)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseNoInlineArgs steps past a module's name and refuses arguments on its
// line: provider modules take their options in a block.
func parseNoInlineArgs(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("unexpected argument %q: options go in a block", d.Val())
	}
	return nil
}
