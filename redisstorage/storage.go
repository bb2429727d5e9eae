package redisstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// keyspace names the Redis keys under one key prefix: a stored key's hash,
// a directory's set of children, a lock.
type keyspace string

func (p keyspace) filePrefix() string { return string(p) + ":file:" }
func (p keyspace) dirPrefix() string  { return string(p) + ":dir:" }

func (p keyspace) file(key string) string { return p.filePrefix() + key }
func (p keyspace) dir(key string) string  { return p.dirPrefix() + key }
func (p keyspace) lock(name string) string {
	return string(p) + ":lock:" + name
}

// The fields of a stored key's hash.
const (
	fieldValue    = "value"
	fieldModified = "modified" // unix nanoseconds of the last Store
	fieldSize     = "size"
)

// deleteScript deletes a key and, if the key is a directory, everything
// below it, then removes the names left without a value or children from
// their parents' sets, up to the root. ARGV[1] and ARGV[2] are the Redis
// key prefixes of values and of directories, ARGV[3] the storage key. It
// runs atomically, so the directory sets always list exactly the keys that
// have a value or children.
var deleteScript = redis.NewScript(`
local files, dirs, key = ARGV[1], ARGV[2], ARGV[3]
local function join(dir, name)
	if dir == '' then return name end
	return dir .. '/' .. name
end
redis.call('DEL', files .. key)
local stack = {key}
while #stack > 0 do
	local dir = table.remove(stack)
	for _, name in ipairs(redis.call('SMEMBERS', dirs .. dir)) do
		local child = join(dir, name)
		redis.call('DEL', files .. child)
		table.insert(stack, child)
	end
	redis.call('DEL', dirs .. dir)
end
local p = key
while p ~= '' do
	if redis.call('EXISTS', files .. p, dirs .. p) > 0 then break end
	local parent, name = '', p
	local slash = string.find(p, '/[^/]*$')
	if slash then parent, name = string.sub(p, 1, slash - 1), string.sub(p, slash + 1) end
	redis.call('SREM', dirs .. parent, name)
	p = parent
end
return 1
`)

// cleanKey normalises a storage key: no leading, trailing or doubled
// slashes, no . or .. components. The root is "".
func cleanKey(key string) string {
	return strings.TrimPrefix(path.Clean("/"+key), "/")
}

// splitKey returns a key's directory and its last component.
func splitKey(key string) (dir, name string) {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// notExist is the error for a key that is not there; it matches
// fs.ErrNotExist.
func notExist(op, key string) error {
	return &fs.PathError{Op: "kassa_redis: " + op, Path: key, Err: fs.ErrNotExist}
}

// fileKey checks and cleans the key of a value.
func fileKey(key string) (string, error) {
	k := cleanKey(key)
	if k == "" {
		return "", fmt.Errorf("kassa_redis: bad key %q", key)
	}
	return k, nil
}

// Store writes value at key, with the time of writing and its size, and
// adds key to its directory's children and each directory to its parent's,
// all in one transaction.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k, err := fileKey(key)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	_, err = s.client.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HSet(ctx, s.keys.file(k), fieldValue, value, fieldModified, now, fieldSize, len(value))
		for p := k; p != ""; {
			dir, name := splitKey(p)
			tx.SAdd(ctx, s.keys.dir(dir), name)
			p = dir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kassa_redis: storing %s: %w", k, err)
	}
	return nil
}

// Load returns the value at key; a missing key is fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k, err := fileKey(key)
	if err != nil {
		return nil, err
	}
	value, err := s.client.HGet(ctx, s.keys.file(k), fieldValue).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, notExist("load", k)
	}
	if err != nil {
		return nil, fmt.Errorf("kassa_redis: loading %s: %w", k, err)
	}
	return value, nil
}

// Delete deletes key and, if it is a directory, every key below it. A
// missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k, err := fileKey(key)
	if err != nil {
		return err
	}
	if err := deleteScript.Run(ctx, s.client, nil, s.keys.filePrefix(), s.keys.dirPrefix(), k).Err(); err != nil {
		return fmt.Errorf("kassa_redis: deleting %s: %w", k, err)
	}
	return nil
}

// Exists reports whether key has a value or is a directory. An error
// reaching Redis reports false.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k := cleanKey(key)
	n, err := s.client.Exists(ctx, s.keys.file(k), s.keys.dir(k)).Result()
	return err == nil && n > 0
}

// Stat describes key: a stored value, with the time of its last Store and
// its size, or a directory (IsTerminal false). A missing key is
// fs.ErrNotExist.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k := cleanKey(key)
	var fields *redis.SliceCmd
	var isDir *redis.IntCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HMGet(ctx, s.keys.file(k), fieldModified, fieldSize)
		isDir = p.Exists(ctx, s.keys.dir(k))
		return nil
	})
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("kassa_redis: stat %s: %w", k, err)
	}
	vals := fields.Val()
	if vals[0] == nil {
		if isDir.Val() == 0 {
			return certmagic.KeyInfo{}, notExist("stat", k)
		}
		return certmagic.KeyInfo{Key: k, IsTerminal: false}, nil
	}
	modified, err1 := parseInt(vals[0])
	size, err2 := parseInt(vals[1])
	if err := errors.Join(err1, err2); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("kassa_redis: stat %s: %w", k, err)
	}
	return certmagic.KeyInfo{Key: k, Modified: time.Unix(0, modified), Size: size, IsTerminal: true}, nil
}

// parseInt reads an integer field of HMGET's reply.
func parseInt(v any) (int64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("field is %T, want a number", v)
	}
	return strconv.ParseInt(str, 10, 64)
}

// List returns the keys in the directory prefix, sorted: its immediate
// children (values and directories) or, if recursive, every key with a
// value below it. A directory with nothing in it is fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	dir := cleanKey(prefix)
	names, err := s.client.SMembers(ctx, s.keys.dir(dir)).Result()
	if err != nil {
		return nil, fmt.Errorf("kassa_redis: listing %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil, notExist("list", dir)
	}
	level := joinAll(dir, names)
	if !recursive {
		slices.Sort(level)
		return level, nil
	}
	var keys []string
	for len(level) > 0 {
		next, values, err := s.descend(ctx, level)
		if err != nil {
			return nil, fmt.Errorf("kassa_redis: listing %s: %w", dir, err)
		}
		keys = append(keys, values...)
		level = next
	}
	slices.Sort(keys)
	return keys, nil
}

// descend looks at one level of a recursive listing in one round trip: of
// the keys given, it returns those with a value, and the children of
// those that are directories.
func (s *Storage) descend(ctx context.Context, level []string) (children, values []string, err error) {
	exists := make([]*redis.IntCmd, len(level))
	members := make([]*redis.StringSliceCmd, len(level))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range level {
			exists[i] = p.Exists(ctx, s.keys.file(k))
			members[i] = p.SMembers(ctx, s.keys.dir(k))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for i, k := range level {
		if exists[i].Val() > 0 {
			values = append(values, k)
		}
		children = append(children, joinAll(k, members[i].Val())...)
	}
	return children, values, nil
}

// joinAll returns the keys of names in dir.
func joinAll(dir string, names []string) []string {
	keys := make([]string, len(names))
	for i, name := range names {
		keys[i] = path.Join(dir, name)
	}
	return keys
}
