package kassa

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// migrateRecords are a shop's records, one or more of each kind, with a
// buyer's contacts in the order, which migrate must never print.
var migrateRecords = map[string]string{
	"kassa/orders/AAAAAAAAAAAAAAAAAAAAAA.json":                                      `{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","state":"paid","email":"buyer@example.com"}`,
	"kassa/orders/BBBBBBBBBBBBBBBBBBBBBB.json":                                      `{"v":1,"id":"BBBBBBBBBBBBBBBBBBBBBB","state":"pending","phone":"+79991234567"}`,
	"kassa/open/BBBBBBBBBBBBBBBBBBBBBB":                                             ``,
	"kassa/unpaid/CCCCCCCCCCCCCCCCCCCCCC":                                           ``,
	"kassa/created/2026/12/06/06/20261206T060000.000000000Z_AAAAAAAAAAAAAAAAAAAAAA": ``,
	"kassa/created.indexed":                                                         ``,
	"kassa/refunds/2026/12/AAAAAAAAAAAAAAAAAAAAAA":                                  `AAAAAAAAAAAAAAAAAAAAAA`,
	"kassa/idempotency/0123abcd":                                                    `AAAAAAAAAAAAAAAAAAAAAA`,
	"kassa/payouts/feed":                                                            `{"v":1}`,
	"kassa/events/AAAAAAAAAAAAAAAAAAAAAA-1.json":                                    `{"v":1}`,
	"kassa/outbox/AAAAAAAAAAAAAAAAAAAAAA-1":                                         ``,
	"kassa/reconciler-lease":                                                        `{"v":1,"holder":"","renewals":7}`,
}

// migrateSource is a file storage holding migrateRecords, and a storage
// lock held (as a killed Caddy leaves one), which is no record.
func migrateSource(t *testing.T) *certmagic.FileStorage {
	t.Helper()
	ctx := context.Background()
	s := &certmagic.FileStorage{Path: t.TempDir()}
	for key, value := range migrateRecords {
		if err := s.Store(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Lock(ctx, reconcilerLock); err != nil {
		t.Fatal(err)
	}
	return s
}

// migrateRun runs a migration and returns its output and error.
func migrateRun(from, to certmagic.Storage, force bool) (string, error) {
	var out bytes.Buffer
	m := &migration{from: from, to: to, force: force, out: &out}
	err := m.run(context.Background())
	return out.String(), err
}

// migrateCheckCopy checks that dst holds exactly migrateRecords.
func migrateCheckCopy(t *testing.T, dst certmagic.Storage) {
	t.Helper()
	ctx := context.Background()
	keys, err := kassaKeys(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(migrateRecords) {
		t.Errorf("the destination holds %d records, want %d: %q", len(keys), len(migrateRecords), keys)
	}
	for key, want := range migrateRecords {
		if got, err := dst.Load(ctx, key); err != nil || string(got) != want {
			t.Errorf("%s in the destination: %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestMigrateCopiesAndVerifies(t *testing.T) {
	src := migrateSource(t)
	dst := &certmagic.FileStorage{Path: t.TempDir()}
	out, err := migrateRun(src, dst, false)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	migrateCheckCopy(t, dst)
	if _, err := os.Stat(filepath.Join(dst.Path, "locks")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the source's storage lock was copied: %v", err)
	}
	want := "KIND         RECORDS\n" +
		"orders       2\nopen         1\nunpaid       1\ncreated      1\nrefunds      1\nidempotency  1\npayouts      1\nevents       2\nother        2\n" +
		"copied and verified 12 records\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	for _, secret := range []string{"buyer@example.com", "+79991234567"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output shows a buyer's contact %q", secret)
		}
	}

	// Run again: the destination is this copy, and the run completes it.
	if out, err := migrateRun(src, dst, false); err != nil || !strings.Contains(out, "holds 12 records equal to the source's, from an earlier run of this copy: completing it") {
		t.Errorf("migrate again: %v\n%s", err, out)
	}
	migrateCheckCopy(t, dst)
}

func TestMigrateRefusesAHeldLease(t *testing.T) {
	src := migrateSource(t)
	ctx := context.Background()
	if err := src.Store(ctx, leaseKey, []byte(`{"v":1,"holder":"shop-1-a1b2c3","renewals":8,"since":"2026-12-06T06:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	dst := &certmagic.FileStorage{Path: t.TempDir()}
	out, err := migrateRun(src, dst, false)
	if err == nil || !strings.Contains(err.Error(), "lease is held by shop-1-a1b2c3") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("migrate with the lease held: %v\n%s", err, out)
	}
	if keys, _ := kassaKeys(ctx, dst); len(keys) > 0 {
		t.Errorf("refused, it still copied %q", keys)
	}
	out, err = migrateRun(src, dst, true)
	if err != nil || !strings.Contains(out, "copying anyway (--force)") {
		t.Fatalf("migrate --force: %v\n%s", err, out)
	}
}

func TestMigrateRefusesAnEmptySource(t *testing.T) {
	src := &certmagic.FileStorage{Path: t.TempDir()}
	out, err := migrateRun(src, &certmagic.FileStorage{Path: t.TempDir()}, false)
	if err == nil || !strings.Contains(err.Error(), "the source holds no kassa records") || strings.Contains(out, "copied") {
		t.Errorf("migrate from an empty storage: %v\n%s", err, out)
	}
}

func TestMigrateRefusesAnotherShopsDestination(t *testing.T) {
	ctx := context.Background()
	for name, key := range map[string]string{
		"a record the source lacks":   "kassa/orders/DDDDDDDDDDDDDDDDDDDDDD.json",
		"a record the source differs": "kassa/orders/AAAAAAAAAAAAAAAAAAAAAA.json",
		"a lease renewed since":       leaseKey,
	} {
		t.Run(name, func(t *testing.T) {
			src := migrateSource(t)
			dst := &certmagic.FileStorage{Path: t.TempDir()}
			if err := dst.Store(ctx, key, []byte(`{"v":1,"state":"paid"}`)); err != nil {
				t.Fatal(err)
			}
			out, err := migrateRun(src, dst, false)
			if err == nil || !strings.Contains(err.Error(), "already holds 1 kassa records") || !strings.Contains(err.Error(), key) {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			if keys, _ := kassaKeys(ctx, dst); len(keys) != 1 {
				t.Errorf("refused, the destination now holds %q", keys)
			}
		})
	}
}

// faultyStorage is a storage whose Store of one key fails, or is lost
// silently (nothing stored, no error).
type faultyStorage struct {
	certmagic.Storage
	key  string
	lose bool
}

func (s *faultyStorage) Store(ctx context.Context, key string, value []byte) error {
	switch {
	case key != s.key:
		return s.Storage.Store(ctx, key, value)
	case s.lose:
		return nil
	}
	return errors.New("disk full")
}

func TestMigrateFailingKey(t *testing.T) {
	const key = "kassa/orders/BBBBBBBBBBBBBBBBBBBBBB.json"
	for _, lose := range []bool{false, true} {
		src := migrateSource(t)
		dst := &faultyStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}, key: key, lose: lose}
		out, err := migrateRun(src, dst, false)
		want := "writing " + key + " to the destination: disk full; the copy is incomplete"
		if lose {
			want = "the copy does not match the source: 1 records, such as " + key + " (missing)"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("lose %v: %v, want %q", lose, err, want)
		}
		if strings.Contains(out, "copied and verified") {
			t.Errorf("lose %v: a failed copy claims success:\n%s", lose, out)
		}
		// Once the fault is gone, a run completes the copy.
		dst.key = ""
		if out, err := migrateRun(src, dst, false); err != nil {
			t.Errorf("lose %v: migrate again: %v\n%s", lose, err, out)
		}
		migrateCheckCopy(t, dst)
	}
}

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	src := migrateSource(t)
	dstPath := filepath.Join(dir, "new")
	from := filepath.Join(dir, "old.caddyfile")
	to := filepath.Join(dir, "new.json")
	config := "{\n\tkassa {\n\t\tstorage file_system " + src.Path + "\n\t}\n}\n"
	if err := os.WriteFile(from, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The app has no storage of its own: the top-level storage is used.
	jsonConfig := `{"storage":{"module":"file_system","root":"` + dstPath + `"},"apps":{"kassa":{}}}`
	if err := os.WriteFile(to, []byte(jsonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "migrate", "--from", from, "--to", to)
	if err != nil || !strings.HasPrefix(stdout, "from: file_system "+src.Path+" (the kassa app's storage)\n"+
		"to:   file_system "+dstPath+" (the config's top-level storage)\n") ||
		!strings.HasSuffix(stdout, "copied and verified 12 records\n") {
		t.Fatalf("migrate: %v\n%s%s", err, stdout, stderr)
	}
	migrateCheckCopy(t, &certmagic.FileStorage{Path: dstPath})

	// A destination inside the source: the copy would write into what it
	// copies.
	nested := filepath.Join(dir, "nested.json")
	if err := os.WriteFile(nested, []byte(`{"apps":{"kassa":{"storage":{"module":"file_system","root":"`+filepath.Join(src.Path, "kassa")+`"}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"migrate", "--from", from}, 2, "migrate needs --from <config> and --to <config>"},
		{[]string{"migrate", "--from", from, "--to", from}, 1, "keep the kassa records in the same storage"},
		{[]string{"migrate", "--from", from, "--to", nested}, 1, "keep the kassa records in the same storage, or one inside the other"},
		{[]string{"migrate", "--from", from, "--to", filepath.Join(dir, "missing.json")}, 1, "--to " + filepath.Join(dir, "missing.json") + ": reading config from file"},
		{[]string{"migrate", "--from", from, "--to", to, "--address", "localhost:2019"}, 2, "takes neither --config nor --address"},
	} {
		_, stderr, err := runCLI(t, c.args...)
		if exitStatus(err) != c.exit || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", c.args, exitStatus(err), stderr, c.exit, c.want)
		}
	}
	noKassa := filepath.Join(dir, "plain.json")
	if err := os.WriteFile(noKassa, []byte(`{"apps":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCLI(t, "migrate", "--from", noKassa, "--to", to); exitStatus(err) != 1 || !strings.Contains(stderr, "no kassa app") {
		t.Errorf("a config without kassa: %v %q", err, stderr)
	}
}

// TestMigrateEnvFile: --envfile loads an environment file first, as caddy
// run's does: here it names the data folder of Caddy's default storage,
// which is then looked up again; a variable already set is kept.
func TestMigrateEnvFile(t *testing.T) {
	dir := t.TempDir()
	xdg := filepath.Join(dir, "data")
	src := &certmagic.FileStorage{Path: filepath.Join(xdg, "caddy")}
	for key, value := range migrateRecords {
		if err := src.Store(context.Background(), key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_DATA_HOME", "")
	os.Unsetenv("XDG_DATA_HOME")
	t.Setenv("KASSA_TEST_KEPT", "from the environment")
	defaultStorage := caddy.DefaultStorage
	t.Cleanup(func() { caddy.DefaultStorage = defaultStorage })
	envfile := filepath.Join(dir, "kassa.env")
	if err := os.WriteFile(envfile, []byte("# test\nXDG_DATA_HOME="+xdg+"\nKASSA_TEST_KEPT=from the file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	from, to := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	dstPath := filepath.Join(dir, "new")
	if err := os.WriteFile(from, []byte(`{"apps":{"kassa":{}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, []byte(`{"storage":{"module":"file_system","root":"`+dstPath+`"},"apps":{"kassa":{}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "migrate", "--envfile", envfile, "--from", from, "--to", to)
	if err != nil || !strings.HasPrefix(stdout, "from: file_system "+src.Path+" (Caddy's default storage)\n") {
		t.Fatalf("migrate --envfile: %v\n%s%s", err, stdout, stderr)
	}
	migrateCheckCopy(t, &certmagic.FileStorage{Path: dstPath})
	if got := os.Getenv("KASSA_TEST_KEPT"); got != "from the environment" {
		t.Errorf("a variable already set became %q", got)
	}
	if _, stderr, err := runCLI(t, "migrate", "--envfile", filepath.Join(dir, "missing.env"), "--from", from, "--to", to); exitStatus(err) != 1 ||
		!strings.Contains(stderr, "--envfile "+filepath.Join(dir, "missing.env")) {
		t.Errorf("a missing envfile: %v %q", err, stderr)
	}
}

// TestMigrateEnvFileErrorHidesValues: an environment file that does not
// parse is named, but none of its text is printed: it holds the storage's
// password and the shop's other secrets.
func TestMigrateEnvFileErrorHidesValues(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cret-redis-password"
	for name, text := range map[string]string{
		"unterminated.env": "REDIS_PASSWORD=\"" + secret + "\nOTHER=1\n",
		"badname.env":      "BAD-NAME=x\nREDIS_PASSWORD=" + secret + "\n",
	} {
		envfile := filepath.Join(dir, name)
		if err := os.WriteFile(envfile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := runCLI(t, "migrate", "--envfile", envfile, "--from", "a.json", "--to", "b.json")
		if exitStatus(err) != 1 || !strings.Contains(stderr, "--envfile "+envfile) || strings.Contains(stdout+stderr, secret) {
			t.Errorf("%s: %v\n%s%s", name, err, stdout, stderr)
		}
	}
}
