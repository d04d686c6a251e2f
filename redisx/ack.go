package redisx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ack says how many replicas must confirm a write before it counts, and
// for how long WAIT waits for them. The zero value confirms nothing: the
// master's answer is enough.
type Ack struct {
	Replicas int
	Timeout  time.Duration
}

// On reports whether writes wait for replicas.
func (a Ack) On() bool { return a.Replicas > 0 }

// ScriptCall is one script call of RunAcked.
type ScriptCall struct {
	Script *Script
	Keys   []string
	Args   []any
}

// AckedResult is the answer of one ScriptCall: the script's reply, and
// whether the replicas confirmed what it wrote (always true without Ack).
type AckedResult struct {
	Cmd        *redis.Cmd
	Replicated bool
}

// RunAcked runs calls, and without a.On() it is a plain run of each (a
// pipeline). With a.On(), each call is followed by WAIT on the connection
// that ran it: WAIT counts the replicas that have every write of its own
// connection, so the script and WAIT go down one connection as one
// pipeline. On Cluster the calls are grouped by the master of their first
// key (a pipeline goes to one node; WAIT has no key that could route it),
// and the groups run at once. A call is Replicated when its WAIT counted
// a.Replicas or more.
//
// A script this client has not run yet goes as EVAL (see loaded). A
// pipeline cannot fall back from EVALSHA to EVAL: the calls that met
// NOSCRIPT (and so ran nothing) are sent again with EVAL, and WAIT again.
func RunAcked(ctx context.Context, c redis.Scripter, a Ack, calls []ScriptCall) []AckedResult {
	out := make([]AckedResult, len(calls))
	if len(calls) == 0 {
		return out
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		p, ok := c.(pipeliner)
		if !ok {
			failAll(out, calls, fmt.Errorf("redisx: %T cannot pipeline", c))
			return out
		}
		runGroup(ctx, p, a, calls, out, nil)
		return out
	}
	groups := map[*redis.Client][]int{}
	for i, call := range calls {
		node, err := cc.MasterForKey(ctx, call.Keys[0])
		if err != nil {
			reloadOn(cc, err)
			out[i] = AckedResult{Cmd: failedCmd(ctx, err)}
			continue
		}
		groups[node] = append(groups[node], i)
	}
	var wg sync.WaitGroup
	for node, idx := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := make([]ScriptCall, len(idx))
			for j, i := range idx {
				sub[j] = calls[i]
			}
			res := make([]AckedResult, len(idx))
			runGroup(ctx, node, a, sub, res, cc)
			for j, i := range idx {
				out[i] = res[j]
			}
		}()
	}
	wg.Wait()
	return out
}

type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// loaded remembers the scripts each client (a node's, on Cluster) ran:
// a script it has not run yet goes as EVAL, not as EVALSHA, so that a
// NOSCRIPT answer does not cost a WAIT for nothing (a whole AckTimeout
// when the replicas are missing). A server that forgot the script (a
// restart, a failover, SCRIPT FLUSH) still answers NOSCRIPT once, and the
// call is sent again with EVAL.
var loaded sync.Map // loadedKey → struct{}

type loadedKey struct {
	p   pipeliner
	sha string
}

// runGroup runs calls down one connection of p, with WAIT after them when
// a is on. cc, when not nil, is the Cluster p is a node of: a failed
// connection or a redirection makes it read the slot map again.
func runGroup(ctx context.Context, p pipeliner, a Ack, calls []ScriptCall, out []AckedResult, cc *redis.ClusterClient) {
	timeout := a.waitTimeout(ctx, p)
	pending := make([]int, len(calls))
	for i := range calls {
		pending[i] = i
	}
	for _, eval := range []bool{false, true} {
		pipe := p.Pipeline()
		for _, i := range pending {
			call := calls[i]
			if _, known := loaded.Load(loadedKey{p, call.Script.Hash()}); eval || !known {
				out[i].Cmd = call.Script.s.Eval(ctx, pipe, call.Keys, call.Args...)
			} else {
				out[i].Cmd = call.Script.s.EvalSha(ctx, pipe, call.Keys, call.Args...)
			}
		}
		var wait *redis.Cmd
		if a.On() {
			wait = pipe.Do(ctx, "WAIT", a.Replicas, timeout.Milliseconds())
		}
		_, err := pipe.Exec(ctx)
		if cc != nil && err != nil {
			reloadOn(cc, err)
		}
		var again []int
		for _, i := range pending {
			k := loadedKey{p, calls[i].Script.Hash()}
			err := out[i].Cmd.Err()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				loaded.Delete(k)
				again = append(again, i)
				continue
			}
			if ranHere(err) {
				loaded.Store(k, struct{}{})
			}
			n := int64(0)
			if wait != nil {
				n, _ = wait.Int64()
			}
			out[i].Replicated = !a.On() || n >= int64(a.Replicas)
		}
		if len(again) == 0 {
			return
		}
		pending = again
	}
}

// waitTimeout is a.Timeout, at least 1ms (WAIT 0 would block for ever),
// and within three quarters of p's read timeout and of the time left
// before ctx's deadline, so that the pipeline's answer is read before
// go-redis gives up on it: a write the replicas are slow to confirm is
// then reported as such, not as a timeout.
func (a Ack) waitTimeout(ctx context.Context, p pipeliner) time.Duration {
	t := a.Timeout
	if o, ok := p.(interface{ Options() *redis.Options }); ok {
		if rt := o.Options().ReadTimeout; rt > 0 {
			t = min(t, rt*3/4)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		t = min(t, time.Until(dl)*3/4)
	}
	return max(t, time.Millisecond)
}

// reloadOn makes cc read the slot map again when err says a node is gone
// or a slot moved (a node's own client follows no redirection).
func reloadOn(cc *redis.ClusterClient, err error) {
	if topologyChanged(err) || redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		cc.ReloadState(context.Background())
	}
}

// ranHere reports whether a script call that answered err ran on the
// server that answered: it succeeded, or the script failed (a reply of
// the server's own, not a redirection to another node nor a transport
// failure).
func ranHere(err error) bool {
	if err == nil {
		return true
	}
	var rerr redis.Error
	return errors.As(err, &rerr) && !redis.HasErrorPrefix(err, "MOVED") && !redis.HasErrorPrefix(err, "ASK") &&
		!redis.HasErrorPrefix(err, "CLUSTERDOWN") && !redis.HasErrorPrefix(err, "TRYAGAIN")
}

func failedCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}

func failAll(out []AckedResult, calls []ScriptCall, err error) {
	for i := range calls {
		out[i] = AckedResult{Cmd: failedCmd(context.Background(), err)}
	}
}

// Run runs one script call: with a.On(), followed by WAIT as RunAcked
// does; without, as Script.Run does. Replicated is always true without
// a.On().
func Run(ctx context.Context, c redis.Scripter, a Ack, s *Script, keys []string, args ...any) AckedResult {
	if !a.On() {
		return AckedResult{Cmd: s.Run(ctx, c, keys, args...), Replicated: true}
	}
	return RunAcked(ctx, c, a, []ScriptCall{{Script: s, Keys: keys, Args: args}})[0]
}
