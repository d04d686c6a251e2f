package xsync_test

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
)

// xsyncTestLogger keeps the test's own actor systems quiet.
func xsyncTestLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
