package caddytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-kassa/kassa"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

var update = flag.Bool("update", false, "rewrite the golden adapt files with the current output")

// goldenSeparator divides a golden file's Caddyfile from the JSON it adapts to.
const goldenSeparator = "\n----------\n"

// TestCaddyfileAdapt adapts each testdata/adapt/*.caddyfiletest (a
// Caddyfile, a line of dashes, the expected JSON) and compares.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, ok := strings.Cut(string(data), goldenSeparator)
			if !ok {
				t.Fatalf("%s: no %q separator", file, strings.TrimSpace(goldenSeparator))
			}
			if *update {
				writeGolden(t, file, caddyfile)
				return
			}
			if !caddytest.CompareAdapt(t, file, caddyfile, "caddyfile", strings.TrimSpace(want)) {
				t.Errorf("%s adapts differently (run go test ./caddytest -run Adapt -update to accept)", file)
			}
		})
	}
}

// TestExampleCaddyfileIsGolden keeps the demos' Caddyfiles and their
// golden files in step: each golden file must hold its example verbatim.
func TestExampleCaddyfileIsGolden(t *testing.T) {
	for example, golden := range map[string]string{
		"../example/Caddyfile":            "testdata/adapt/example.caddyfiletest",
		"../example/proxied.Caddyfile":    "testdata/adapt/proxied.caddyfiletest",
		"../example/Caddyfile.production": "testdata/adapt/production.caddyfiletest",
	} {
		want, err := os.ReadFile(example)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		caddyfile, _, _ := strings.Cut(string(got), goldenSeparator)
		if strings.TrimSpace(caddyfile) != strings.TrimSpace(string(want)) {
			t.Errorf("%s changed: copy it into %s and run with -update", example, golden)
		}
	}
}

func writeGolden(t *testing.T, file, caddyfile string) {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, adapted, "", "\t"); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimRight(caddyfile, "\n") + goldenSeparator + pretty.String() + "\n"
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// syntaxReference matches a Caddyfile block that documents syntax with
// <placeholders> rather than giving a config.
var syntaxReference = regexp.MustCompile(`<[a-z][a-z0-9 ._|-]*>`)

// docFiles are the Markdown files whose examples are tested: the README,
// CONTRIBUTING.md and everything under docs/, as paths from the repository
// root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md", "xcaddy.md"}
	err := filepath.WalkDir("../docs", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, filepath.ToSlash(strings.TrimPrefix(path, "../")))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// goldenName is the golden adapt file of example i of the doc file.
func goldenName(doc string, i int) string {
	base := strings.TrimSuffix(strings.ReplaceAll(doc, "/", "-"), ".md")
	return fmt.Sprintf("testdata/docs/%s-%02d.json", base, i)
}

// TestDocExamples adapts every Caddyfile example in the docs and compares
// it with testdata/docs/<file>-NN.json (-update rewrites them). A snippet
// of provider options is adapted inside the kassa global option, a sandbox
// snippet inside a site.
func TestDocExamples(t *testing.T) {
	tested := 0
	goldens := map[string]bool{}
	for _, doc := range docFiles(t) {
		text, err := os.ReadFile("../" + doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(text), -1)
		for i, m := range blocks {
			example, wrapped := wrapSnippet(m[1])
			if syntaxReference.MatchString(example) {
				continue
			}
			tested++
			name := goldenName(doc, i)
			goldens[name] = true
			adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(example), nil)
			if err != nil {
				t.Errorf("%s example %d does not adapt: %v\n%s", doc, i, err, example)
				continue
			}
			if len(warnings) > 0 && !wrapped {
				t.Errorf("%s example %d: warnings %v", doc, i, warnings)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, adapted, "", "\t")
			if *update {
				os.MkdirAll("testdata/docs", 0o755)
				if err := os.WriteFile(name, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(name)
			if err != nil || !bytes.Equal(bytes.TrimSpace(want), bytes.TrimSpace(pretty.Bytes())) {
				t.Errorf("%s example %d adapts differently from %s (run go test ./caddytest -run DocExamples -update to accept):\n%s",
					doc, i, name, pretty.String())
			}
		}
	}
	if tested < 13 {
		t.Errorf("only %d Caddyfile examples found in the docs", tested)
	}
	files, _ := filepath.Glob("testdata/docs/*.json")
	for _, f := range files {
		if !goldens[filepath.ToSlash(f)] {
			t.Errorf("%s belongs to no doc example: remove it", f)
		}
	}
}

// wrapSnippet makes a whole Caddyfile of a doc example: a snippet of
// provider options goes inside the kassa global option, a sandbox snippet
// inside a site. wrapped says whether it did.
func wrapSnippet(example string) (caddyfile string, wrapped bool) {
	switch strings.Fields(example)[0] {
	case "payment", "receipts":
		return "{\n\tkassa {\n" + example + "\t}\n}\n", true
	case "fault":
		return "http://localhost:9080 {\n\tkassa_sandbox {\n" + example + "\t}\n}\n", true
	}
	return example, false
}

// docFence matches a fenced code block of a doc file: its language and
// its text.
var docFence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```$")

// secretKeys are the option names whose values in a doc JSON example
// must be {env.*} placeholders, never literal secrets.
var secretKeys = map[string]bool{"login": true, "secret": true, "secret2": true, "salt": true, "token": true}

// envPlaceholder is a secret's only allowed value in a doc example.
var envPlaceholder = regexp.MustCompile(`^\{env\.[A-Z][A-Z0-9_]*\}$`)

// TestDocJSONExamples: every ```json block of the docs that is a Caddy
// config (it has "apps") means exactly what the ```caddyfile block before
// it adapts to. They are compared as JSON, so a doc may indent as it
// likes, and a duration may be written as Caddy reads it ("10s") where the
// adapter writes nanoseconds; anything else that differs fails, whichever
// side drifted. Secrets in them are {env.*} placeholders.
func TestDocJSONExamples(t *testing.T) {
	tested := 0
	for _, doc := range docFiles(t) {
		tested += testJSONExamples(t, doc)
	}
	if tested < 3 {
		t.Errorf("only %d JSON config examples in the docs", tested)
	}
}

// testJSONExamples checks the JSON config examples of one doc file and
// returns how many it has.
func testJSONExamples(t *testing.T, doc string) int {
	src, err := os.ReadFile("../" + doc)
	if err != nil {
		t.Fatal(err)
	}
	var caddyfile string
	caddyfileIndex, tested := -1, 0
	for _, m := range docFence.FindAllStringSubmatch(string(src), -1) {
		lang, text := m[1], m[2]
		if lang == "caddyfile" {
			caddyfile = text
			caddyfileIndex++
			continue
		}
		var doc map[string]any
		if lang != "json" || json.Unmarshal([]byte(text), &doc) != nil || doc["apps"] == nil {
			continue
		}
		tested++
		t.Run(fmt.Sprintf("%s/caddyfile%02d", doc, caddyfileIndex), func(t *testing.T) {
			if caddyfile == "" || syntaxReference.MatchString(caddyfile) {
				t.Fatalf("a JSON config follows no Caddyfile example:\n%s", text)
			}
			adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err != nil {
				t.Fatalf("the Caddyfile example does not adapt: %v", err)
			}
			var want any
			if err := json.Unmarshal(adapted, &want); err != nil {
				t.Fatal(err)
			}
			if path := jsonDiff("", doc, want); path != "" {
				var pretty bytes.Buffer
				json.Indent(&pretty, adapted, "", "  ")
				t.Errorf("the JSON form of Caddyfile example %d differs from its adaptation at %s; it adapts to:\n%s",
					caddyfileIndex, path, pretty.String())
			}
			checkSecrets(t, "", doc)
			// A duration written as a string must be where Caddy reads one.
			apps, _ := doc["apps"].(map[string]any)
			kassaApp, _ := json.Marshal(apps["kassa"])
			if err := json.Unmarshal(kassaApp, new(kassa.App)); err != nil {
				t.Errorf("the kassa app of the JSON form does not load: %v", err)
			}
		})
	}
	return tested
}

// jsonDiff returns the path of the first place where got differs from
// want, or "" when they mean the same. A string in got stands for a number
// in want when it is a duration of that many nanoseconds.
func jsonDiff(path string, got, want any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return path + "." + k
			}
		}
		for k := range w {
			if d := jsonDiff(path+"."+k, g[k], w[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path
		}
		for i := range w {
			if d := jsonDiff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); d != "" {
				return d
			}
		}
		return ""
	case float64:
		if s, ok := got.(string); ok {
			if d, err := caddy.ParseDuration(s); err == nil && float64(d) == w {
				return ""
			}
		}
	}
	if got != want {
		return path
	}
	return ""
}

// checkSecrets fails the test for a secret option whose value is not an
// {env.*} placeholder.
func checkSecrets(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && secretKeys[k] && !envPlaceholder.MatchString(s) {
				t.Errorf("%s.%s is %q: a secret in an example must be an {env.*} placeholder", path, k, s)
			}
			checkSecrets(t, path+"."+k, e)
		}
	case []any:
		for i, e := range v {
			checkSecrets(t, fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}
