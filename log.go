package xsync

import (
	"context"
	"fmt"
	"log/slog"

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

// RouteGoRedisLogs sends the log lines of go-redis to log, at Info level
// under the name "go-redis"; a nil log drops them.
//
// go-redis logs through one process-wide logger, which prints to stderr
// unless redis.SetLogger replaced it: this call replaces it, for every
// go-redis client of the program, xsync's and others alike. xsync never
// calls it itself; a program that wants go-redis's lines in its zap log
// calls it once, at start-up.
func RouteGoRedisLogs(log *zap.Logger) {
	if log == nil {
		log = zap.NewNop()
	}
	redis.SetLogger(goredisLogger{log.Named("go-redis")})
}

type goredisLogger struct{ log *zap.Logger }

// Printf implements go-redis's internal.Logging.
func (l goredisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Info(fmt.Sprintf(format, v...))
}
