package actors

import (
	"github.com/redisxsync/xsync/redisx"
	"github.com/redisxsync/xsync/scripts"
)

// registry holds xsync's Lua scripts, by file name without ".lua":
// registry.Get("lock_acquire").
var registry = redisx.MustNewRegistry(scripts.FS)
