package redisx

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterReload is how old go-redis's map of a Cluster's slots may get
// while commands flow before it is read again (go-redis's default is 60s).
// A client that sends nothing reads nothing: waiting stays free.
const clusterReload = time.Second

// newClusterClient is a Cluster client that learns a failover at once: a
// command that finds its node unreachable, or the cluster down, makes it
// read the slot map again. go-redis alone follows MOVED replies, but a
// killed master sends none: without this, the client would keep dialling
// it until its periodic reload.
func newClusterClient(o *redis.ClusterOptions) *redis.ClusterClient {
	if o.ClusterStateReloadInterval == 0 {
		o.ClusterStateReloadInterval = clusterReload
	}
	c := redis.NewClusterClient(o)
	c.AddHook(reloadOnFailure{c})
	return c
}

// reloadOnFailure is the hook of newClusterClient.
type reloadOnFailure struct {
	c *redis.ClusterClient
}

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) check(err error) {
	if topologyChanged(err) {
		h.c.ReloadState(context.Background()) // in the background, at most every 200ms
	}
}

// topologyChanged: err says that a node is gone or that the cluster is
// between two configurations.
func topologyChanged(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return redis.HasErrorPrefix(err, "CLUSTERDOWN") || redis.HasErrorPrefix(err, "TRYAGAIN")
}
