package caddytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

// TestExampleCaddyfileIsGolden keeps the demo's Caddyfile and its golden
// file in step: the golden file must hold the example verbatim.
func TestExampleCaddyfileIsGolden(t *testing.T) {
	example, err := os.ReadFile("../example/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/adapt/example.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	caddyfile, _, _ := strings.Cut(string(golden), goldenSeparator)
	if strings.TrimSpace(caddyfile) != strings.TrimSpace(string(example)) {
		t.Error("example/Caddyfile changed: copy it into testdata/adapt/example.caddyfiletest and run with -update")
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
