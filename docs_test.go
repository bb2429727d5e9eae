package kassa

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dynamicCodes are the error codes built at run time, as "<prefix>" +
// something, by where they are built (file:function) and their prefix. A
// new such site fails TestDocsErrorCodes until it is listed here.
var dynamicCodes = map[string][]string{
	"admin.go:parseTimeParam bad_":    {"bad_from", "bad_to", "bad_since"},
	"payouts.go:checkPayoutText bad_": {"bad_to", "bad_method", "bad_order_id"},
	// A ValidationError's field: the docs name the pattern.
	"answer.go:publicError invalid_": {"invalid_<field>"},
}

// rootFiles parses the package's own (non-test) Go files.
func rootFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	return files
}

// stringConsts maps the package's string constants to their values.
func stringConsts(files map[string]*ast.File) map[string]string {
	consts := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							if s, ok := stringLit(vs.Values[i]); ok {
								consts[name.Name] = s
							}
						}
					}
				}
			}
			return true
		})
	}
	return consts
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// codeParams maps each function (or function literal assigned to a name)
// with a parameter named code to that parameter's index.
func codeParams(files map[string]*ast.File) map[string]int {
	params := map[string]int{}
	index := func(ft *ast.FuncType) int {
		i := 0
		for _, field := range ft.Params.List {
			for _, name := range field.Names {
				if name.Name == "code" {
					return i
				}
				i++
			}
		}
		return -1
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if i := index(n.Type); i >= 0 && n.Recv == nil {
					params[n.Name.Name] = i
				}
			case *ast.AssignStmt:
				for j, rhs := range n.Rhs {
					if fl, ok := rhs.(*ast.FuncLit); ok && j < len(n.Lhs) {
						if i := index(fl.Type); i >= 0 {
							params[n.Lhs[j].(*ast.Ident).Name] = i
						}
					}
				}
			}
			return true
		})
	}
	// pegasCodeKind reads Pegas-kassa's own codes, not ours.
	delete(params, "pegasCodeKind")
	return params
}

// answeredCodes is every error code the package can answer with: the Code
// of each RequestError and admin error body it builds, each argument of a
// function's code parameter, and publicError's codes.
func answeredCodes(t *testing.T) []string {
	files := rootFiles(t)
	consts := stringConsts(files)
	params := codeParams(files)
	found := map[string]bool{}
	seenDynamic := map[string]bool{}
	add := func(where string, e ast.Expr) {
		if s, ok := stringLit(e); ok {
			found[s] = true
			return
		}
		if id, ok := e.(*ast.Ident); ok {
			if s, ok := consts[id.Name]; ok {
				found[s] = true
			}
			return
		}
		if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
			prefix, ok := stringLit(b.X)
			key := where + " " + prefix
			codes, listed := dynamicCodes[key]
			if !ok || !listed {
				t.Errorf("%s builds an error code at run time (%s...): list what it can be in dynamicCodes", where, prefix)
				return
			}
			seenDynamic[key] = true
			for _, c := range codes {
				found[c] = true
			}
		}
	}
	for name, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			where := name + ":" + fd.Name.Name
			ast.Inspect(fd, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					if id, ok := n.Type.(*ast.Ident); ok && (id.Name == "RequestError" || id.Name == "adminErrorBody") {
						for _, elt := range n.Elts {
							if kv, ok := elt.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Code" {
								add(where, kv.Value)
							}
						}
					}
				case *ast.CallExpr:
					if id, ok := n.Fun.(*ast.Ident); ok {
						if i, ok := params[id.Name]; ok && i < len(n.Args) {
							add(where, n.Args[i])
						}
					}
				case *ast.ReturnStmt:
					if fd.Name.Name == "publicError" && len(n.Results) == 3 {
						add(where, n.Results[1])
					}
				}
				return true
			})
		}
	}
	for key := range dynamicCodes {
		if !seenDynamic[key] {
			t.Errorf("dynamicCodes lists %s, which the code no longer has", key)
		}
	}
	return slices.Sorted(maps.Keys(found))
}

// caddyfileNames is every directive, global option and subdirective the
// kassa parsers accept: the names registered with Caddy and the cases of
// each parser's switch on d.Val().
func caddyfileNames(t *testing.T) []string {
	parsers := []string{"parseGlobalOption", "parseNotify", "Checkout.UnmarshalCaddyfile",
		"ReceiptHandler.UnmarshalCaddyfile", "CallbackHandler.UnmarshalCaddyfile"}
	found := map[string]bool{}
	perParser := map[string]int{}
	for _, f := range rootFiles(t) {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil {
				recv := fd.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if id, ok := recv.(*ast.Ident); ok {
					name = id.Name + "." + name
				}
			}
			perParser[name] += 0
			ast.Inspect(fd, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					// httpcaddyfile.RegisterGlobalOption("kassa", ...) and
					// RegisterHandlerDirective("kassa_checkout", ...).
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) > 0 &&
						(sel.Sel.Name == "RegisterGlobalOption" || sel.Sel.Name == "RegisterHandlerDirective") {
						if s, ok := stringLit(n.Args[0]); ok {
							found[s] = true
						}
					}
				case *ast.SwitchStmt:
					call, ok := n.Tag.(*ast.CallExpr)
					if !ok || !slices.Contains(parsers, name) {
						return true
					}
					if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Val" {
						return true
					}
					for _, stmt := range n.Body.List {
						for _, e := range stmt.(*ast.CaseClause).List {
							if s, ok := stringLit(e); ok {
								found[s] = true
								perParser[name]++
							}
						}
					}
				}
				return true
			})
		}
	}
	// A parser renamed or rewritten must not silently drop its options
	// from the check (kassa_callback takes none).
	for _, p := range parsers {
		if n, ok := perParser[p]; !ok || (n == 0 && p != "CallbackHandler.UnmarshalCaddyfile") {
			t.Errorf("parser %s: found no subdirectives (renamed or rewritten? update caddyfileNames)", p)
		}
	}
	return slices.Sorted(maps.Keys(found))
}

// jsonNames is the JSON field name of every option of the kassa app and
// its handlers.
func jsonNames() []string {
	var names []string
	for _, v := range []any{App{}, Checkout{}, AmountRange{}, ReceiptHandler{}, CallbackHandler{}, Notify{}, Product{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				names = append(names, name)
			}
		}
	}
	return names
}

// mentions reports whether doc names word: in backquotes for a plain
// word (invalid), else standing on its own (not inside a longer name).
func mentions(doc, word string) bool {
	if !strings.Contains(word, "_") {
		return strings.Contains(doc, "`"+word+"`") || strings.Contains(doc, "`"+word+" ")
	}
	return regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(word) + `($|[^A-Za-z0-9_])`).MatchString(doc)
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsErrorCodes checks that every error code an answer can carry is
// in the reference and in the troubleshooting guide.
func TestDocsErrorCodes(t *testing.T) {
	codes := answeredCodes(t)
	if len(codes) < 50 {
		t.Fatalf("found only %d error codes in the code: %v", len(codes), codes)
	}
	for _, doc := range []string{"docs/reference.md", "docs/troubleshooting.md"} {
		text := readDoc(t, doc)
		for _, code := range codes {
			if !mentions(text, code) {
				t.Errorf("%s does not name the error code %s", doc, code)
			}
		}
	}
}

// TestDocsOptions checks that every Caddyfile directive and subdirective
// the kassa parsers accept, and every JSON field of their options, is in
// the reference.
func TestDocsOptions(t *testing.T) {
	text := readDoc(t, "docs/reference.md")
	names := caddyfileNames(t)
	if len(names) < 25 {
		t.Fatalf("found only %d Caddyfile names in the parsers: %v", len(names), names)
	}
	for _, name := range names {
		if !mentions(text, name) {
			t.Errorf("docs/reference.md does not name the Caddyfile option %s", name)
		}
	}
	for _, name := range jsonNames() {
		if !mentions(text, name) && !strings.Contains(text, `"`+name+`"`) {
			t.Errorf("docs/reference.md does not name the JSON field %s", name)
		}
	}
}
