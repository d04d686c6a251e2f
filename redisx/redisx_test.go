package redisx_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

func TestTagged_KeepsATagAndGivesOneToAKeyWithout(t *testing.T) {
	cases := map[string]string{
		"orders":         "{orders}",
		"{user1}:orders": "{user1}:orders",
		"a{b}c":          "a{b}c",
		"a{}b":           "{a{}b}", // an empty tag is no tag in Redis Cluster
		"a}b{":           "{a}b{}",
	}
	for in, want := range cases {
		if got := redisx.Tagged(in); got != want {
			t.Errorf("Tagged(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeys_LiveUnderThePrefix(t *testing.T) {
	k := redisx.Keys{Prefix: "app"}
	if got := k.Lock("orders"); got != "app:lock:{orders}" {
		t.Errorf("Lock = %q", got)
	}
	if got := k.Fence("orders"); got != "app:fence:{orders}" {
		t.Errorf("Fence = %q", got)
	}
	if got := k.Pool("accounts", "ready"); got != "app:pool:{accounts}:ready" {
		t.Errorf("Pool = %q", got)
	}
	if got := (redisx.Keys{}).Lock("x"); got != "xsync:lock:{x}" {
		t.Errorf("default prefix Lock = %q", got)
	}
	if a, b := k.LockChannel(1), k.LockChannel(2); a == b || !strings.HasPrefix(a, "app:") {
		t.Errorf("lock channels of DB 1 and 2: %q, %q", a, b)
	}
}

func TestConfig_Options(t *testing.T) {
	o, err := redisx.Config{URL: "rediss://bob:pw@example.com:6380/4"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "example.com:6380" || o.DB != 4 || o.Username != "bob" || o.Password != "pw" || o.TLSConfig == nil {
		t.Fatalf("rediss URL gave %+v", o)
	}
	if o.MaxRetries != -1 {
		t.Fatalf("MaxRetries = %d, want -1: scripts must not be resent behind our back", o.MaxRetries)
	}
	if !o.ContextTimeoutEnabled {
		t.Fatal("ContextTimeoutEnabled is off: a call would outlive the deadline xsync gives it")
	}
	if r := redisx.Retrying(o); r.MaxRetries != 0 || o.MaxRetries != -1 || r.ContextTimeoutEnabled || !o.ContextTimeoutEnabled {
		t.Fatalf("Retrying: %+v (copy), %+v (original)", r, o)
	}
	o, err = redisx.Config{}.Options()
	if err != nil || o.Addr != redisx.DefaultAddr {
		t.Fatalf("zero Config: %v, %v", o, err)
	}
	for _, bad := range []redisx.Config{{URL: "mysql://x"}, {URL: "redis://h:1/x"}, {Addr: "nohost"}, {DB: -1}} {
		if _, err := bad.Options(); !errors.Is(err, redisx.ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", bad, err)
		}
	}
	if _, err := (redisx.Config{URL: "redis://u:topsecret@h:1/x"}).Options(); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("bad URL error shows the password: %v", err)
	}
}

// A script includes a library by a line of its own; the library is no
// script, and an include of a library that does not exist is an error.
func TestRegistry_IncludesLibraries(t *testing.T) {
	ctx := t.Context()
	fsys := fstest.MapFS{
		"lib_math.lua": {Data: []byte("local function double(x) return 2 * x end\n")},
		"four.lua":     {Data: []byte("-- doubles 2\n--#include lib_math\nreturn double(2)\n")},
	}
	r, err := redisx.NewRegistry(fsys)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
	defer rdb.Close()
	if n, err := r.Get("four").Run(ctx, rdb, nil).Int(); err != nil || n != 4 {
		t.Fatalf("script with an included library: %d, %v; want 4", n, err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a library was registered as a script")
			}
		}()
		r.Get("lib_math")
	}()
	fsys["bad.lua"] = &fstest.MapFile{Data: []byte("--#include lib_nope\nreturn 1\n")}
	if _, err := redisx.NewRegistry(fsys); err == nil || !strings.Contains(err.Error(), "lib_nope") {
		t.Fatalf("include of a missing library: err = %v", err)
	}
}

func TestRegistry_ReadsLuaFilesByName(t *testing.T) {
	fsys := fstest.MapFS{
		"one.lua":   {Data: []byte("return 1")},
		"notes.txt": {Data: []byte("not a script")},
		"sub/x.lua": {Data: []byte("return 2")},
		"two.lua":   {Data: []byte("return 2")},
	}
	r, err := redisx.NewRegistry(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if r.Get("one").Name() != "one" || r.Get("two").Hash() == r.Get("one").Hash() {
		t.Fatal("scripts not registered by name")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Get of an unknown script did not panic")
		}
	}()
	r.Get("notes")
}
