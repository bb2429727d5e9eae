package caddytest

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// Markdown the link test reads.
var (
	// fenceBlock is a fenced code block; links in it are not links.
	fenceBlock = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```[ \t]*$")
	// codeSpan is inline code; a link in it is not a link either.
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	// mdLink is an inline link or image: [text](target) or [text](target "title").
	mdLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// refLink is a reference link's definition: [label]: target.
	refLink = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s+(\S+)`)
	// heading is an ATX heading line and its text.
	heading = regexp.MustCompile(`(?m)^#{1,6}\s+(.*?)\s*#*\s*$`)
	// headingLink is a link in a heading, which keeps only its text.
	headingLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	// urlScheme starts an absolute URL (https:, mailto:), not checked here.
	urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// linkedDocs are the Markdown files whose relative links are checked, as
// paths from the repository root: the docs whose examples are tested, and
// the changelog and security policy.
func linkedDocs(t *testing.T) []string {
	t.Helper()
	return append(docFiles(t), "CHANGELOG.md", "SECURITY.md")
}

// proseOf is a Markdown text without its code blocks and code spans.
func proseOf(text string) string {
	return codeSpan.ReplaceAllString(fenceBlock.ReplaceAllString(text, ""), "")
}

// headingSlug is the anchor GitHub gives a heading: its text (a link's
// text, without code marks) in lower case, spaces made '-', every other
// character but letters, digits, '-' and '_' dropped.
func headingSlug(text string) string {
	text = headingLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchorsOf are the anchors of a Markdown file's headings; a repeated
// heading gets -1, -2... as on GitHub.
func anchorsOf(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(fenceBlock.ReplaceAllString(text, ""), -1) {
		slug := headingSlug(m[1])
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// TestDocLinks: every relative link in the README, CONTRIBUTING.md,
// CHANGELOG.md, SECURITY.md, xcaddy.md and docs/ (outside code) names a
// file of the repository, and its #anchor, if any, a heading of that file.
func TestDocLinks(t *testing.T) {
	files := linkedDocs(t)
	texts := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile("../" + f)
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	anchors := map[string]map[string]bool{}
	anchorsFor := func(file string) map[string]bool {
		if a, ok := anchors[file]; ok {
			return a
		}
		text, ok := texts[file]
		if !ok {
			b, err := os.ReadFile("../" + file)
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		}
		anchors[file] = anchorsOf(text)
		return anchors[file]
	}
	checked := 0
	for _, f := range files {
		prose := proseOf(texts[f])
		var targets []string
		for _, m := range mdLink.FindAllStringSubmatch(prose, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(prose, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if urlScheme.MatchString(target) {
				continue
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			resolved := f
			if file != "" {
				resolved = path.Clean(path.Join(path.Dir(f), file))
			}
			if strings.HasPrefix(resolved, "../") {
				t.Errorf("%s: link %s leaves the repository", f, target)
				continue
			}
			if _, err := os.Stat("../" + resolved); err != nil {
				t.Errorf("%s: link %s: no file %s", f, target, resolved)
				continue
			}
			if anchor != "" && strings.HasSuffix(resolved, ".md") && !anchorsFor(resolved)[anchor] {
				t.Errorf("%s: link %s: %s has no heading with the anchor #%s", f, target, resolved, anchor)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found: is the link pattern broken?", checked)
	}
}

// TestHeadingSlug pins GitHub's anchor rules the link test relies on.
func TestHeadingSlug(t *testing.T) {
	for text, want := range map[string]string{
		"Getting started":                    "getting-started",
		"Callbacks: `kassa_callback`":        "callbacks-kassa_callback",
		"Personal data (152-FZ)":             "personal-data-152-fz",
		"Orders, storage and the reconciler": "orders-storage-and-the-reconciler",
		"Чек и НДС 22%":                      "чек-и-ндс-22",
		"See [the guide](guide.md) first":    "see-the-guide-first",
	} {
		if got := headingSlug(text); got != want {
			t.Errorf("headingSlug(%q) = %q, want %q", text, got, want)
		}
	}
	a := anchorsOf("# Setup\n\n```sh\n# not a heading\n```\n## Setup\n## Setup\n")
	for _, want := range []string{"setup", "setup-1", "setup-2"} {
		if !a[want] {
			t.Errorf("anchorsOf: no %q in %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a comment in a code block was taken for a heading")
	}
}
