package xsync_test

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
)

// go-redis logs through a process-wide logger. New leaves it alone;
// RouteGoRedisLogs, called by the program, sends its lines to a zap logger.
func TestRouteGoRedisLogs_SendsGoRedisLinesToTheLogger(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	xsync.RouteGoRedisLogs(zap.New(core))
	t.Cleanup(func() { xsync.RouteGoRedisLogs(nil) })

	// go-redis logs that it rounds an expiry under 1ms up to 1ms.
	db := rawDB(t, 0)
	if err := db.Set(t.Context(), testPrefix(t)+":k", "v", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	lines := logs.FilterLoggerName("go-redis").All()
	if len(lines) != 1 {
		t.Fatalf("go-redis lines in the logger: %v, want the one about the truncated expiry", logs.All())
	}

	// A client with a Logger of its own does not take go-redis's lines.
	xsync.RouteGoRedisLogs(nil)
	clientCore, clientLogs := observer.New(zap.DebugLevel)
	newClient(t, func(o *xsync.Options) { o.Logger = zap.New(clientCore) })
	if err := db.Set(t.Context(), testPrefix(t)+":k", "v", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	if n := clientLogs.FilterLoggerName("go-redis").Len() + logs.Len(); n != 1 {
		t.Fatalf("after RouteGoRedisLogs(nil) and a New, go-redis's line went to a logger: %v %v", clientLogs.All(), logs.All())
	}
}
