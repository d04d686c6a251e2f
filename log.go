package xsync

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
)

// protoactorLogger routes the actor system's own log lines to log.
func protoactorLogger(log *zap.Logger) func(*actor.ActorSystem) *slog.Logger {
	return func(sys *actor.ActorSystem) *slog.Logger {
		return slog.New(zapslog.NewHandler(log.Core(), zapslog.WithName("protoactor"))).With("system", sys.ID)
	}
}

// go-redis logs through one process-wide logger, which prints to stderr by
// default. xsync routes it to the Logger of the latest client created with a
// non-nop Logger, and drops it until then: the library prints nothing.
var (
	goredisLog     atomic.Pointer[zap.Logger]
	goredisLogOnce sync.Once
)

type goredisLogger struct{}

// Printf implements go-redis's internal.Logging.
func (goredisLogger) Printf(_ context.Context, format string, v ...any) {
	if l := goredisLog.Load(); l != nil {
		l.Named("go-redis").Info(fmt.Sprintf(format, v...))
	}
}

func routeGoRedisLogs(log *zap.Logger) {
	goredisLogOnce.Do(func() { redis.SetLogger(goredisLogger{}) })
	if log.Core().Enabled(zap.ErrorLevel) {
		goredisLog.Store(log)
	}
}
