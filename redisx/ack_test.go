package redisx_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// A script the client has not run yet goes as EVAL at once: one WAIT per
// call, not a wasted one behind a NOSCRIPT (each a whole timeout when the
// replicas are missing). A server that forgot the script (SCRIPT FLUSH
// here, a restart or a failover in life) answers NOSCRIPT once, and the
// call is sent again with EVAL: then it costs a second WAIT, once.
func TestRunAcked_SendsANewScriptAsEvalWithOneWait(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: testredis.Addr(t), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	src := fmt.Sprintf("-- %d\nredis.call('INCR', KEYS[1])\nreturn 1\n", time.Now().UnixNano())
	reg, err := redisx.NewRegistry(fstest.MapFS{"incr.lua": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("redisx-runacked-eval-%d", time.Now().UnixNano())
	defer c.Del(ctx, key)
	call := []redisx.ScriptCall{{Script: reg.Get("incr"), Keys: []string{key}}}
	ack := redisx.Ack{Replicas: 1, Timeout: 10 * time.Millisecond}
	run := func() (waits, evals, evalshas int64) {
		t.Helper()
		before := commandCalls(t, c)
		if err := redisx.RunAcked(ctx, c, ack, call)[0].Cmd.Err(); err != nil {
			t.Fatal(err)
		}
		after := commandCalls(t, c)
		return after["wait"] - before["wait"], after["eval"] - before["eval"], after["evalsha"] - before["evalsha"]
	}
	if w, e, s := run(); w != 1 || e != 1 || s != 0 {
		t.Fatalf("first call: %d WAIT, %d EVAL, %d EVALSHA; want 1, 1, 0", w, e, s)
	}
	if w, e, s := run(); w != 1 || e != 0 || s != 1 {
		t.Fatalf("second call: %d WAIT, %d EVAL, %d EVALSHA; want 1, 0, 1", w, e, s)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if w, e, s := run(); w != 2 || e != 1 || s != 1 {
		t.Fatalf("after SCRIPT FLUSH: %d WAIT, %d EVAL, %d EVALSHA; want 2, 1, 1", w, e, s)
	}
	if w, e, s := run(); w != 1 || e != 0 || s != 1 {
		t.Fatalf("after the reload: %d WAIT, %d EVAL, %d EVALSHA; want 1, 0, 1", w, e, s)
	}
	if n, err := c.Get(ctx, key).Int(); err != nil || n != 4 {
		t.Fatalf("the key holds %d, %v; want 4: every call ran once", n, err)
	}
}

// commandCalls reads INFO commandstats: calls per command.
func commandCalls(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}
