package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/joho/godotenv"
	"github.com/spf13/cobra"
)

// The records copied are every key under this prefix. Storage locks are
// kept elsewhere by every storage (the file storage under locks/, the
// Redis storage under <key_prefix>/locks/), so they are never copied.
const migratePrefix = "kassa"

func migrateCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate --from <config> --to <config> [--envfile <file>] [--force]",
		Short: "Copies the kassa records from the storage of one config to the storage of another, with Caddy stopped, and verifies the copy",
		Long: `
Copies every kassa record (orders, their indexes, idempotency keys,
payouts, notification events, the reconciler's lease) from the storage the
kassa app of the --from config uses to the storage the kassa app of the
--to config uses: the app's storage option, else the config's top-level
storage, else Caddy's default file storage (which depends on HOME and
XDG_DATA_HOME: run the command as the user Caddy runs as). It does not start
Caddy nor call any provider. Certificates and the rest of Caddy's storage
are not copied: see 'caddy storage export' and 'caddy storage import'.

A source without kassa records is refused: the wrong config, or a default
storage under another user's HOME.

A config is a Caddyfile (a file named Caddyfile* or *.caddyfile) or JSON;
--adapter names the adapter of both, as 'caddy run' takes it. --envfile
loads an environment file first, as 'caddy run --envfile' does (a variable
already set is kept): the storages' {env.*} settings, such as a Redis
password, come from there.

Caddy must be stopped on the source: a running kassa app holds the
reconciler's lease, and a clean stop frees it. In a cluster only one
instance holds it: stop every instance, since a standby still running is
not seen until it takes the freed lease over. A held lease is refused
(exit 1) unless --force: a Caddy still running on the source keeps
changing orders that the copy would then miss or hold half-way. Use
--force only when the holder was killed and will not come back.

The destination must hold no kassa record, or only records equal to the
source's (an earlier run of the same copy, perhaps interrupted, which this
run completes). A destination holding anything else is refused: migrate
never merges two shops nor overwrites a newer record.

After copying, every key is read back from both storages and compared
byte for byte. The command prints how many records of each kind it copied,
never their contents. Exit status: 0 when every record was copied and
matches; 1 when it refused to run, a record failed to copy, or the copy
does not match (the message says which, and running it again is safe);
2 on a usage error.
`,
		Args: cobra.ArbitraryArgs,
		RunE: cliMigrate,
	}
	f := c.Flags()
	f.String("from", "", "Config (Caddyfile or JSON) of the Caddy whose records to copy: the source")
	f.String("to", "", "Config (Caddyfile or JSON) of the Caddy to run next: the destination")
	f.StringSlice("envfile", nil, "Environment file(s) to load first, as 'caddy run --envfile' does (the storage's password, HOME); repeatable")
	f.Bool("force", false, "Copy even though the source's reconciler lease is held (a killed Caddy that will not come back)")
	return c
}

// cliMigrate: caddy kassa migrate.
func cliMigrate(cmd *cobra.Command, args []string) error {
	if err := checkArgs(cmd, args, 0); err != nil {
		return finish(cmd, err)
	}
	flags := cmd.Flags()
	from, _ := flags.GetString("from")
	to, _ := flags.GetString("to")
	adapter, _ := flags.GetString("adapter")
	force, _ := flags.GetBool("force")
	envfiles, _ := flags.GetStringSlice("envfile")
	switch {
	case from == "" || to == "":
		return finish(cmd, usageErrorf("migrate needs --from <config> and --to <config>"))
	case flags.Changed("config") || flags.Changed("address"):
		return finish(cmd, usageErrorf("migrate reads the configs of --from and --to, and takes neither --config nor --address"))
	}
	if err := loadEnvFiles(envfiles); err != nil {
		return finish(cmd, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	src, srcName, err := configStorage(ctx, from, adapter)
	if err != nil {
		return finish(cmd, fmt.Errorf("--from %s: %v", from, err))
	}
	dst, dstName, err := configStorage(ctx, to, adapter)
	if err != nil {
		return finish(cmd, fmt.Errorf("--to %s: %v", to, err))
	}
	if sameStorage(src, dst) {
		return finish(cmd, fmt.Errorf("--from and --to keep the kassa records in the same storage, or one inside the other (%s): "+
			"give the destination a folder or key_prefix of its own", srcName))
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "from: %s\nto:   %s\n", srcName, dstName)
	m := &migration{from: src, to: dst, force: force, out: out}
	return finish(cmd, m.run(ctx))
}

// loadEnvFiles sets the variables of each file that the environment does
// not already have, as Caddy's --envfile does, and then finds Caddy's
// default storage again, since the files may set HOME or XDG_DATA_HOME.
func loadEnvFiles(files []string) error {
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--envfile %s: %v", file, err)
		}
		vars, err := godotenv.UnmarshalBytes(text)
		if err != nil {
			// The parser's message quotes the file's text: its secrets.
			return fmt.Errorf("--envfile %s: not a valid environment file (its text is not shown: it holds secrets); "+
				"check each line is NAME=value, with names of letters, digits and underscores, and every quote closed", file)
		}
		for k, v := range vars {
			if _, set := os.LookupEnv(k); !set {
				os.Setenv(k, v)
			}
		}
	}
	if len(files) > 0 {
		caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	}
	return nil
}

// storageSetting is a storage option as Caddy's JSON holds it, loaded
// with Caddy's own module loading.
type storageSetting struct {
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=caddy.storage inline_key=module"`
}

// configStorage is the storage the kassa app of the config in file would
// keep its orders in: the app's storage option, else the config's
// top-level storage, else Caddy's default; and its name for the
// operator. Only the storage module is loaded and provisioned, not the
// app.
func configStorage(ctx caddy.Context, file, adapter string) (certmagic.Storage, string, error) {
	config, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, "", err
	}
	var top storageSetting
	var apps struct {
		Apps struct {
			Kassa *storageSetting `json:"kassa"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(config, &top); err != nil {
		return nil, "", fmt.Errorf("reading the config: %v", err)
	}
	if err := json.Unmarshal(config, &apps); err != nil {
		return nil, "", fmt.Errorf("reading the config: %v", err)
	}
	setting, where := apps.Apps.Kassa, "the kassa app's storage"
	if setting == nil {
		return nil, "", errors.New("the config has no kassa app (no kassa global option), so it keeps no orders")
	}
	if setting.StorageRaw == nil {
		setting, where = &top, "the config's top-level storage"
	}
	if setting.StorageRaw == nil {
		return caddy.DefaultStorage, describeStorage(caddy.DefaultStorage, nil, "Caddy's default storage"), nil
	}
	mod, err := ctx.LoadModule(setting, "StorageRaw")
	if err != nil {
		return nil, "", fmt.Errorf("loading storage: %v", err)
	}
	conv, ok := mod.(caddy.StorageConverter)
	if !ok {
		return nil, "", fmt.Errorf("storage module %T is not a caddy.StorageConverter", mod)
	}
	storage, err := conv.CertMagicStorage()
	if err != nil {
		return nil, "", fmt.Errorf("creating storage: %v", err)
	}
	named, _ := mod.(caddy.Module)
	return storage, describeStorage(storage, named, where), nil
}

// describeStorage names a storage for the operator: a file storage by its
// folder, another by its module's name only (its settings may hold
// passwords), and where the config sets it.
func describeStorage(s certmagic.Storage, mod caddy.Module, where string) string {
	if fs, ok := s.(*certmagic.FileStorage); ok {
		path := fs.Path
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return "file_system " + path + " (" + where + ")"
	}
	if mod != nil {
		return string(mod.CaddyModule().ID) + " (" + where + ")"
	}
	return fmt.Sprintf("%T (%s)", s, where)
}

// sameStorage reports whether two storages are one: the same folder or
// one folder inside the other (a copy would then write into its own
// source), or
// the same settings as the storage describes them.
func sameStorage(a, b certmagic.Storage) bool {
	x, described := a.(fmt.Stringer)
	y, _ := b.(fmt.Stringer)
	if fa, ok := a.(*certmagic.FileStorage); ok {
		fb, ok := b.(*certmagic.FileStorage)
		return ok && nestedFolders(fa.Path, fb.Path)
	}
	return described && y != nil && x.String() == y.String()
}

// nestedFolders reports whether two paths name one folder, or one is
// inside the other.
func nestedFolders(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	if errA != nil || errB != nil {
		return false
	}
	inside := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	return inside(a, b) || inside(b, a)
}

// migration copies the kassa records from one storage to another and
// verifies the copy.
type migration struct {
	from, to certmagic.Storage
	// force copies although the source's reconciler lease is held.
	force bool
	// out gets what the operator reads: counts, never record contents.
	out io.Writer
}

// run checks that the copy may start, copies, and verifies: it returns
// nil only when every source record is in the destination, byte for byte.
func (m *migration) run(ctx context.Context) error {
	if err := m.checkLease(ctx); err != nil {
		return err
	}
	keys, err := kassaKeys(ctx, m.from)
	if err != nil {
		return fmt.Errorf("listing the source's records: %v", err)
	}
	if len(keys) == 0 {
		return errors.New("the source holds no kassa records: is it the config Caddy runs, and is migrate run as the user " +
			"Caddy runs as, with its environment (Caddy's default storage is under that user's HOME)?")
	}
	earlier, err := m.checkDestination(ctx, keys)
	if err != nil {
		return err
	}
	if earlier > 0 {
		fmt.Fprintf(m.out, "the destination holds %d records equal to the source's, from an earlier run of this copy: completing it\n", earlier)
	}
	for _, key := range keys {
		b, err := m.from.Load(ctx, key)
		if err != nil {
			return fmt.Errorf("reading %s from the source: %v; the copy is incomplete: fix the cause and run migrate again", key, err)
		}
		if err := m.to.Store(ctx, key, b); err != nil {
			return fmt.Errorf("writing %s to the destination: %v; the copy is incomplete: fix the cause and run migrate again", key, err)
		}
	}
	if err := m.verify(ctx); err != nil {
		return err
	}
	return m.printCounts(keys)
}

// checkLease refuses a source whose reconciler lease is held, unless
// forced: a running Caddy holds it, and a clean stop frees it (lease.go).
func (m *migration) checkLease(ctx context.Context) error {
	b, err := m.from.Load(ctx, leaseKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the source's reconciler lease: %v", err)
	}
	var rec leaseRecord
	if json.Unmarshal(b, &storedLease{leaseRecord: &rec}) != nil || rec.Holder == "" {
		return nil // free, as the app reads it
	}
	if m.force {
		fmt.Fprintf(m.out, "the source's reconciler lease is held by %s: copying anyway (--force)\n", rec.Holder)
		return nil
	}
	return fmt.Errorf("the source's reconciler lease is held by %s: a Caddy is running on this storage, or was killed "+
		"instead of stopped. Stop every Caddy that uses it (caddy stop), or start and stop the killed one cleanly, "+
		"then run migrate again; --force copies anyway, and loses what a still running Caddy changes meanwhile", rec.Holder)
}

// checkDestination refuses a destination that holds kassa records other
// than the source's, or differing from them; it returns how many it holds
// equal to the source's (an earlier run of this copy).
func (m *migration) checkDestination(ctx context.Context, sourceKeys []string) (int, error) {
	keys, err := kassaKeys(ctx, m.to)
	if err != nil {
		return 0, fmt.Errorf("listing the destination's records: %v", err)
	}
	var foreign []string
	for _, key := range keys {
		if _, found := slices.BinarySearch(sourceKeys, key); !found {
			foreign = append(foreign, key)
			continue
		}
		same, err := sameRecord(ctx, m.from, m.to, key)
		if err != nil {
			return 0, err
		}
		if !same {
			foreign = append(foreign, key)
		}
	}
	if len(foreign) > 0 {
		return 0, fmt.Errorf("the destination already holds %d kassa records that are not the source's as it is now (such as %s): "+
			"they belong to another shop, or a Caddy ran on the destination after an earlier copy. migrate never merges "+
			"two shops: give a destination without kassa records (another Redis key_prefix, an empty folder)",
			len(foreign), strings.Join(foreign[:min(3, len(foreign))], ", "))
	}
	return len(keys), nil
}

// verify reads every record of both storages and reports any that is
// missing from either or differs.
func (m *migration) verify(ctx context.Context) error {
	src, err := kassaKeys(ctx, m.from)
	if err != nil {
		return fmt.Errorf("listing the source's records again: %v", err)
	}
	dst, err := kassaKeys(ctx, m.to)
	if err != nil {
		return fmt.Errorf("listing the destination's records to verify them: %v", err)
	}
	var bad []string
	for _, key := range src {
		if _, found := slices.BinarySearch(dst, key); !found {
			bad = append(bad, key+" (missing)")
			continue
		}
		same, err := sameRecord(ctx, m.from, m.to, key)
		if err != nil {
			return fmt.Errorf("verifying: %v", err)
		}
		if !same {
			bad = append(bad, key+" (differs)")
		}
	}
	for _, key := range dst {
		if _, found := slices.BinarySearch(src, key); !found {
			bad = append(bad, key+" (not in the source)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the copy does not match the source: %d records, such as %s. Was a Caddy running on either storage? "+
			"Stop it, clear the destination and run migrate again", len(bad), strings.Join(bad[:min(3, len(bad))], ", "))
	}
	return nil
}

// sameRecord reports whether key holds the same bytes in both storages.
func sameRecord(ctx context.Context, a, b certmagic.Storage, key string) (bool, error) {
	x, err := a.Load(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s from the source: %v", key, err)
	}
	y, err := b.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s from the destination: %v", key, err)
	}
	return bytes.Equal(x, y), nil
}

// kassaKeys lists the keys of every record under the kassa prefix,
// sorted, without directories.
func kassaKeys(ctx context.Context, s certmagic.Storage) ([]string, error) {
	listed, err := s.List(ctx, migratePrefix, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keys := listed[:0]
	for _, key := range listed {
		info, err := s.Stat(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		if info.IsTerminal {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// recordKinds are the kinds of record migrate counts, by key prefix, in
// the order it prints them; a key of none of them is "other" (the lease,
// the markers of finished background work).
var recordKinds = []struct{ kind, prefix string }{
	{"orders", ordersPrefix + "/"},
	{"open", openPrefix + "/"},
	{"unpaid", unpaidPrefix + "/"},
	{"created", createdPrefix + "/"},
	{"refunds", refundsPrefix + "/"},
	{"idempotency", idempotencyPrefix + "/"},
	{"payouts", payoutsPrefix + "/"},
	{"events", eventsPrefix + "/"},
	{"events", outboxPrefix + "/"},
	{"events", undeliveredPrefix + "/"},
}

// recordKind is the kind migrate counts key as.
func recordKind(key string) string {
	for _, k := range recordKinds {
		if strings.HasPrefix(key, k.prefix) {
			return k.kind
		}
	}
	return "other"
}

// printCounts prints how many records of each kind were copied.
func (m *migration) printCounts(keys []string) error {
	counts := map[string]int{}
	for _, key := range keys {
		counts[recordKind(key)]++
	}
	tw := newTable(m.out)
	row(tw, "KIND", "RECORDS")
	var kinds []string
	for _, k := range recordKinds {
		if !slices.Contains(kinds, k.kind) {
			kinds = append(kinds, k.kind)
		}
	}
	for _, kind := range append(kinds, "other") {
		row(tw, kind, fmt.Sprint(counts[kind]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(m.out, "copied and verified %d records\n", len(keys))
	return err
}
