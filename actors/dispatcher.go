package actors

import (
	"github.com/asynkron/protoactor-go/actor"
)

// Dispatcher returns the dispatcher of xsync's actors: protoactor's default
// one starts a goroutine for every run of a mailbox that was empty, and that
// goroutine grows its stack again each time through the actor's handlers.
// This one runs a mailbox on a goroutine of an earlier run when one waits
// (for callIdle at most), and starts a goroutine otherwise.
func Dispatcher() actor.Dispatcher { return sharedDispatcher }

// mailboxThroughput is how many messages a mailbox run handles before it
// yields, as protoactor's default dispatcher does.
const mailboxThroughput = 300

var sharedDispatcher = &pooledDispatcher{runs: make(chan func())}

type pooledDispatcher struct {
	runs chan func()
}

// Schedule implements actor.Dispatcher.
func (d *pooledDispatcher) Schedule(fn func()) {
	select {
	case d.runs <- fn:
	default:
		go callLoop(fn, d.runs, nil)
	}
}

// Throughput implements actor.Dispatcher.
func (d *pooledDispatcher) Throughput() int { return mailboxThroughput }

var _ actor.Dispatcher = (*pooledDispatcher)(nil)
