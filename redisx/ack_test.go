package redisx_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// RunAcked sends EVALSHA and WAIT as one pipeline; a server that does not
// know the script yet answers NOSCRIPT, and RunAcked sends it again with
// EVAL (a pipeline cannot fall back by itself), running each call once.
// The test server has no replica: WAIT 1 counts none, and every call is
// reported unconfirmed; without Ack every call is confirmed.
func TestRunAcked_FallsBackToEvalAndReportsWhatReplicasConfirmed(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: testredis.Addr(t), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	// A script the server cannot know yet: its source is new.
	src := fmt.Sprintf("-- %d\nredis.call('APPEND', KEYS[1], ARGV[1])\nreturn ARGV[1]\n", time.Now().UnixNano())
	reg, err := redisx.NewRegistry(fstest.MapFS{"append.lua": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	s := reg.Get("append")
	key := fmt.Sprintf("redisx-runacked-%d", time.Now().UnixNano())
	defer c.Del(ctx, key)
	calls := func(vs ...string) []redisx.ScriptCall {
		var out []redisx.ScriptCall
		for _, v := range vs {
			out = append(out, redisx.ScriptCall{Script: s, Keys: []string{key}, Args: []any{v}})
		}
		return out
	}

	out := redisx.RunAcked(ctx, c, redisx.Ack{Replicas: 1, Timeout: 20 * time.Millisecond}, calls("a", "b"))
	for i, want := range []string{"a", "b"} {
		if got, err := out[i].Cmd.Text(); err != nil || got != want {
			t.Fatalf("call %d answered %q, %v; want %q", i, got, err, want)
		}
		if out[i].Replicated {
			t.Fatalf("call %d reported confirmed by a replica the server does not have", i)
		}
	}
	out = redisx.RunAcked(ctx, c, redisx.Ack{}, calls("c"))
	if got, err := out[0].Cmd.Text(); err != nil || got != "c" || !out[0].Replicated {
		t.Fatalf("call without Ack: %q, %v, replicated %v; want \"c\", confirmed", got, err, out[0].Replicated)
	}
	if got, err := c.Get(ctx, key).Result(); err != nil || got != "abc" {
		t.Fatalf("the key holds %q, %v; want \"abc\": every call ran once, in order", got, err)
	}
}
