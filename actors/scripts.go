package actors

import (
	"github.com/redisxsync/xsync/redisx"
	"github.com/redisxsync/xsync/scripts"
)

// Scripts is the registry of xsync's Lua scripts, by file name without
// ".lua": Scripts.Get("lock_acquire").
var Scripts = redisx.MustNewRegistry(scripts.FS)
