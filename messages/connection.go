package messages

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
)

// GetDB asks the connection actor for the go-redis client bound to DB.
// Internal selects the client xsync's own scripts use (retries off) instead
// of the one handed to callers (go-redis's default retries).
type GetDB struct {
	DB       int
	Internal bool
}

// GetDBResult answers GetDB.
type GetDBResult struct {
	Client redis.UniversalClient
	Err    error
}

// Subscribe asks the connection actor to deliver the messages published on
// Channel to Subscriber, as *Published. The answer, *SubscribeResult, comes
// once Redis has confirmed the subscription, so that nothing published after
// the answer is missed.
type Subscribe struct {
	Channel    string
	Subscriber *actor.PID
}

// SubscribeResult answers Subscribe.
type SubscribeResult struct {
	Err error
}

// Unsubscribe stops the delivery of Channel to Subscriber. It has no answer.
type Unsubscribe struct {
	Channel    string
	Subscriber *actor.PID
}

// Published is a message published on a subscribed channel.
type Published struct {
	Channel string
	Payload string
}

// Resubscribed tells a subscriber that the pub/sub connection was lost and
// is back: messages published meanwhile may be lost, so the subscriber must
// retry whatever it was waiting for.
type Resubscribed struct {
	Channel string
}

// Shutdown asks an actor to finish its work before it is stopped: fail its
// waiters with the error given, release what it holds, close its connections.
// The answer, *ShutdownResult, comes when that is done.
type Shutdown struct {
	Err error
}

// ShutdownResult answers Shutdown.
type ShutdownResult struct {
	Err error
}
