package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Limits of the pool scripts.
const (
	// poolPurgeBatch bounds the expired containers one script call purges.
	poolPurgeBatch = 128
	// poolGrantLife is how long a grant record stays in Redis: the time
	// within which a take whose answer was lost can be resent, or a grant
	// nobody received handed back, by its token.
	poolGrantLife = 30 * time.Second
)

// poolKeys are the Redis keys of one pool, all under the pool's hash tag.
type poolKeys struct {
	keys    redisx.Keys
	name    string
	channel redisx.Wake // Arg() for the scripts, Channel to subscribe
	base    []string    // ready, expiry, meta, data, expired: KEYS[1..5] of the scripts
	waiting string      // the clients' waiting counts (pool_waiting.lua)
}

func newPoolKeys(keys redisx.Keys, name string, db int) poolKeys {
	return poolKeys{
		keys:    keys,
		name:    name,
		channel: keys.PoolWake(db, name),
		base: []string{
			keys.Pool(name, "ready"),
			keys.Pool(name, "expiry"),
			keys.Pool(name, "meta"),
			keys.Pool(name, "data"),
			keys.Pool(name, "expired"),
		},
		waiting: keys.Pool(name, "waiting"),
	}
}

func (k poolKeys) grant(token string) string { return k.keys.Pool(k.name, "grant:"+token) }

// takeRequest is one request of a pool_take batch.
type takeRequest struct {
	token  string
	n      int
	random bool
	wait   bool // tried afresh when its grant was overtaken
	budget int  // bypasses left; -1: never holds others back
}

// Outcomes of one request of a pool_take batch, as the script returns them.
const (
	takeShort   = 0
	takeServed  = 1
	takeSkipped = 2
	takeCorrupt = 3
	takeVoid    = 4 // a one-shot request's grant was overtaken
)

type takeOutcome struct {
	kind       int
	containers []messages.Container
	at         int64  // takeShort: earliest time (µs) it could succeed, -1 never
	corrupt    string // takeCorrupt: what is corrupt
}

// takeArgs builds a pool_take call; allowance is how many bypasses the
// requests waiting ahead of the batch still allow (-1: no limit).
func takeArgs(k poolKeys, allowance int, reqs []takeRequest) ([]string, []any) {
	keys := make([]string, 0, len(k.base)+len(reqs))
	keys = append(keys, k.base...)
	args := make([]any, 0, 5+3*len(reqs))
	args = append(args, poolPurgeBatch, poolGrantLife.Milliseconds(), allowance, k.channel.Arg(), k.name)
	for _, r := range reqs {
		keys = append(keys, k.grant(r.token))
		kind := "a"
		if r.random {
			kind = "r"
		}
		if r.wait {
			kind += "w"
		}
		args = append(args, kind, r.n, r.budget)
	}
	return keys, args
}

// runTake runs pool_take for a batch; it returns the server time (µs) and
// one outcome per request. With ack on, replicated says whether the
// replicas confirmed what the call wrote (always true with ack off).
func runTake(ctx context.Context, cl redis.Scripter, ack redisx.Ack, k poolKeys, allowance int, reqs []takeRequest) (now int64, outs []takeOutcome, replicated bool, err error) {
	keys, args := takeArgs(k, allowance, reqs)
	r := redisx.Run(ctx, cl, ack, registry.Get("pool_take"), keys, args...)
	now, outs, err = parseTake(r.Cmd, reqs)
	return now, outs, r.Replicated, err
}

func parseTake(cmd *redis.Cmd, reqs []takeRequest) (int64, []takeOutcome, error) {
	res, err := cmd.Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) != len(reqs)+1 {
		return 0, nil, fmt.Errorf("pool_take: %d replies for %d requests", len(res)-1, len(reqs))
	}
	now, ok := res[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("pool_take: server time is %T", res[0])
	}
	outs := make([]takeOutcome, len(reqs))
	for i, r := range res[1:] {
		o, err := parseOutcome(r)
		if err != nil {
			return 0, nil, fmt.Errorf("pool_take: request %d: %w", i+1, err)
		}
		outs[i] = o
	}
	return now, outs, nil
}

func parseOutcome(r any) (takeOutcome, error) {
	a, ok := r.([]any)
	if !ok || len(a) == 0 {
		return takeOutcome{}, fmt.Errorf("reply %T", r)
	}
	kind, ok := a[0].(int64)
	if !ok {
		return takeOutcome{}, fmt.Errorf("outcome %T", a[0])
	}
	o := takeOutcome{kind: int(kind)}
	switch o.kind {
	case takeServed:
		for _, c := range a[1:] {
			f, ok := c.([]any)
			if !ok {
				return o, fmt.Errorf("container %T", c)
			}
			ct, err := parseContainer(f)
			if err != nil {
				return o, err
			}
			o.containers = append(o.containers, ct)
		}
	case takeShort:
		if len(a) != 2 {
			return o, errors.New("short reply without a time")
		}
		if o.at, ok = a[1].(int64); !ok {
			return o, fmt.Errorf("time %T", a[1])
		}
	case takeSkipped, takeVoid:
	case takeCorrupt:
		if len(a) != 2 {
			return o, errors.New("corrupt reply without a detail")
		}
		if o.corrupt, ok = a[1].(string); !ok {
			return o, fmt.Errorf("detail %T", a[1])
		}
	default:
		return o, fmt.Errorf("outcome %d", o.kind)
	}
	return o, nil
}

// parseContainer reads {id, createdMs, ttlMs, intervalMs, nextUs, usage,
// data, failures}: a container a take handed out, so not retired.
func parseContainer(f []any) (messages.Container, error) {
	if len(f) != 8 {
		return messages.Container{}, fmt.Errorf("container of %d fields", len(f))
	}
	id, ok1 := f[0].(string)
	data, ok2 := f[6].(string)
	nums, ok3 := int64s(f[1:6])
	failures, ok4 := f[7].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return messages.Container{}, fmt.Errorf("container fields %v", f[:6])
	}
	c := container(id, nums, data)
	c.Failures = failures
	return c, nil
}

// parseListed reads a container as pool_list gives it: the fields of
// parseContainer, then retired (1 or 0).
func parseListed(f []any) (messages.Container, error) {
	if len(f) != 9 {
		return messages.Container{}, fmt.Errorf("container of %d fields", len(f))
	}
	c, err := parseContainer(f[:8])
	retired, ok := f[8].(int64)
	if err == nil && !ok {
		err = fmt.Errorf("container %q: retired %T", c.ID, f[8])
	}
	c.Retired = retired == 1
	return c, err
}

// container builds a Container from {createdMs, ttlMs, intervalMs, nextUs, usage}.
func container(id string, n []int64, data string) messages.Container {
	return messages.Container{
		ID:            id,
		CreatedAt:     time.UnixMilli(n[0]),
		TTL:           time.Duration(n[1]) * time.Millisecond,
		Interval:      time.Duration(n[2]) * time.Millisecond,
		NextAvailable: time.UnixMicro(n[3]),
		UsageCount:    n[4],
		Data:          data,
	}
}

func int64s(a []any) ([]int64, bool) {
	out := make([]int64, len(a))
	for i, v := range a {
		n, ok := v.(int64)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// runHandBack runs pool_handback for the grants of tokens, none of which
// reached a caller. It returns how many containers were given back, and how
// many were left as they were because another take, a Cooldown, a Put or a
// Remove overtook the grant.
func runHandBack(ctx context.Context, cl redis.Scripter, k poolKeys, tokens []string) (back, left int64, err error) {
	return runGiveBack(ctx, cl, k, "1", tokens, nil)
}

// runReturn runs pool_handback for containers returned unused: ids[i] of
// the grant of tokens[i].
func runReturn(ctx context.Context, cl redis.Scripter, k poolKeys, tokens []string, ids [][]string) (back, left int64, err error) {
	return runGiveBack(ctx, cl, k, "0", tokens, ids)
}

func runGiveBack(ctx context.Context, cl redis.Scripter, k poolKeys, uncount string, tokens []string, ids [][]string) (back, left int64, err error) {
	keys := slices.Clone(k.base)
	args := []any{k.channel.Arg(), k.name, uncount}
	for i, t := range tokens {
		keys = append(keys, k.grant(t))
		if ids != nil {
			var b strings.Builder
			for _, id := range ids[i] {
				fmt.Fprintf(&b, "%d:%s", len(id), id)
			}
			args = append(args, b.String())
		}
	}
	res, err := registry.Get("pool_handback").Run(ctx, cl, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("pool_handback: %d replies", len(res))
	}
	return res[0], res[1], nil
}

// durMs turns a duration into whole milliseconds, rounding up: a positive
// duration is never stored as 0 (which means "none").
func durMs(d time.Duration) int64 { return roundUp(d, time.Millisecond) }

// durUs turns a duration into whole microseconds, rounding up.
func durUs(d time.Duration) int64 { return roundUp(d, time.Microsecond) }

func roundUp(d, unit time.Duration) int64 {
	n := int64(d / unit)
	if d%unit > 0 {
		n++
	}
	return n
}

// runPut runs pool_put.
func runPut(ctx context.Context, cl redis.Scripter, k poolKeys, cs []messages.Container) error {
	args := make([]any, 0, 2+5*len(cs))
	args = append(args, k.channel.Arg(), k.name)
	for _, c := range cs {
		var created int64
		if !c.CreatedAt.IsZero() {
			created = c.CreatedAt.UnixMilli()
		}
		args = append(args, c.ID, created, durMs(c.TTL), durMs(c.Interval))
	}
	for _, c := range cs {
		args = append(args, c.Data)
	}
	return registry.Get("pool_put").Run(ctx, cl, k.base, args...).Err()
}

// runGet runs pool_get; found is false when the pool does not hold id.
func runGet(ctx context.Context, cl redis.Scripter, k poolKeys, id string) (c messages.Container, found bool, err error) {
	res, err := registry.Get("pool_get").Run(ctx, cl, k.base, id).Slice()
	if err != nil {
		return c, false, err
	}
	if len(res) == 2 && res[1] == int64(0) {
		return c, false, nil
	}
	if len(res) != 10 || res[1] != int64(1) {
		return c, false, fmt.Errorf("pool_get: reply %v", res)
	}
	nums, ok := int64s(res[2:7])
	data, ok2 := res[7].(string)
	health, ok3 := int64s(res[8:10])
	if !ok || !ok2 || !ok3 {
		return c, false, fmt.Errorf("pool_get: fields %v", res[:7])
	}
	c = container(id, nums, data)
	c.Failures, c.Retired = health[0], health[1] == 1
	return c, true, nil
}

func runRemove(ctx context.Context, cl redis.Scripter, k poolKeys, ids []string) (int, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	n, err := registry.Get("pool_remove").Run(ctx, cl, k.base, args...).Int64()
	return int(n), err
}

// runCooldown returns the new next-available time (µs), or -1 when the id
// is not found.
func runCooldown(ctx context.Context, cl redis.Scripter, k poolKeys, id string, d time.Duration) (int64, error) {
	res, err := registry.Get("pool_cooldown").Run(ctx, cl, k.base, k.channel.Arg(), k.name, id, durUs(d)).Int64Slice()
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("pool_cooldown: %d replies", len(res))
	}
	return res[1], nil
}

// runStats runs pool_stats; id is the reading actor's entry in the waiting
// counts, left out of OthersWaiting.
func runStats(ctx context.Context, cl redis.Scripter, k poolKeys, id string) (messages.PoolReadStatsResult, error) {
	keys := append(slices.Clip(k.base), k.waiting)
	res, err := registry.Get("pool_stats").Run(ctx, cl, keys, poolPurgeBatch, id).Int64Slice()
	if err != nil {
		return messages.PoolReadStatsResult{}, err
	}
	if len(res) != 7 {
		return messages.PoolReadStatsResult{}, fmt.Errorf("pool_stats: %d replies", len(res))
	}
	s := messages.PoolReadStatsResult{
		At:      time.UnixMicro(res[0]),
		Total:   int(res[1]),
		Ready:   int(res[2]),
		Expired: res[4],
		Retired: int(res[5]),
		// Others' entries: this actor's own count is exact.
		OthersWaiting: int(res[6]),
	}
	if res[3] >= 0 {
		s.NextReadyAt = time.UnixMicro(res[3])
	}
	return s, nil
}
