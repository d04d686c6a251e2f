package redisx_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// The error hook names the script of every failed call, alone or in a
// pipeline; a nil reply and the NOSCRIPT that Run answers with EVAL are no
// failures, and the callers' clients do not get the hook.
func TestRegistry_ErrorHookNamesTheFailedScript(t *testing.T) {
	reg := redisx.MustNewRegistry(fstest.MapFS{
		"boom.lua":    {Data: []byte("return redis.error_reply('XSYNC_CORRUPT boom')")},
		"nothing.lua": {Data: []byte("return nil")},
	})
	var failed []string
	cfg := redisx.Config{Addr: testredis.Addr(t)}
	cfg.Hooks = append(cfg.Hooks, reg.ErrorHook(func(script string, err error) {
		failed = append(failed, script+": "+err.Error())
	}))
	tg, err := cfg.Target()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl := tg.Client(0, false)
	defer cl.Close()
	if err := reg.Get("nothing").Run(ctx, cl, nil).Err(); err == nil {
		t.Fatal("a nil reply is redis.Nil for go-redis")
	}
	// Not loaded yet: EVALSHA answers NOSCRIPT, EVAL fails.
	if err := reg.Get("boom").Run(ctx, cl, nil).Err(); err == nil {
		t.Fatal("boom did not fail")
	}
	pipe := cl.Pipeline()
	cmd := reg.Get("boom").Run(ctx, pipe, nil)
	_, _ = pipe.Exec(ctx)
	if cmd.Err() == nil {
		t.Fatal("boom did not fail in a pipeline")
	}
	user := tg.Client(0, true)
	defer user.Close()
	_ = reg.Get("boom").Run(ctx, user, nil).Err()

	want := []string{"boom: XSYNC_CORRUPT boom", "boom: XSYNC_CORRUPT boom"}
	if len(failed) != len(want) || failed[0] != want[0] || failed[1] != want[1] {
		t.Fatalf("hook saw %q, want %q (the EVAL alone, then the pipeline's EVALSHA)", failed, want)
	}
}
