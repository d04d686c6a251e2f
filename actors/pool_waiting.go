package actors

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// The pool's waiting count in Redis: waiters live in each process, so that
// an operator (xsync top, Stats of another client) sees them only if each
// pool actor writes its own count. Waiting must cost no command while
// nothing changes, so there is no heartbeat:
//
//   - an actor writes its entry (pool_waiting) only when the requests that
//     a try did not serve change: a burst of waiters tried in one call is
//     one write, and one write at a time is under way (the next one carries
//     whatever changed meanwhile);
//   - the entry holds the count and the time its last waiter gives up (its
//     context's deadline, by the server's clock), so that readers ignore it
//     once that time has passed: waiters that end at their deadline need
//     no write, and the entry of a process that crashed ends by itself;
//   - waiters without a deadline make an entry that ends waitingHorizon
//     after it was written, written again when half of that has passed:
//     the one write made while nothing changes, so that the entry of a
//     process that crashed with such waiters ends too;
//   - a client that closes removes its entry (Shutdown waits for it).

// waitingHorizon is how long the entry of waiters without a deadline lasts.
const waitingHorizon = 10 * time.Minute

// waitingEntry is one actor's waiting count as readers see it.
type waitingEntry struct {
	count   int
	until   time.Time // when the last waiter gives up, or the horizon
	horizon bool      // until is the horizon of a waiter without deadline
}

// live reports whether readers count the entry at now.
func (e waitingEntry) live(now time.Time) bool {
	return e.count > 0 && e.until.After(now)
}

// waitingWriter is the state of an actor's entry.
type waitingWriter struct {
	sent    waitingEntry // written, or being written
	unsure  bool         // the last write failed: it may not be there
	writing bool
	timer   *time.Timer // rewrites a horizon entry (see waitingHorizon)
	// offset turns local times into the server's: the server's clock minus
	// the local one, read by the take calls (0 until one answered).
	offset time.Duration
}

// Messages of the waiting writer: the answer of a pool_waiting call, and
// its timer.
type (
	waitingDone struct {
		callResult
		err error
	}
	waitingTick struct{}
)

// readClock keeps the server's clock as a take call read it: now (µs) on
// the server, the call sent at start.
func (w *waitingWriter) readClock(start time.Time, nowUs int64) {
	if nowUs > 0 {
		w.offset = time.UnixMicro(nowUs).Sub(start)
	}
}

// waitingNow is the entry that the actor's waiters make now.
func (p *poolActor) waitingNow(now time.Time) waitingEntry {
	var e waitingEntry
	forever := false
	for _, w := range p.queue.ws {
		if w.done || !w.wait || !w.waited {
			continue
		}
		e.count++
		if w.until.IsZero() {
			forever = true
		} else if w.until.After(e.until) {
			e.until = w.until
		}
	}
	if forever {
		// The horizon written stands while more than half of it is left.
		at := now.Add(waitingHorizon)
		if sent := p.waiting.sent; sent.horizon && sent.until.Sub(now) > waitingHorizon/2 {
			at = sent.until
		}
		e.until, e.horizon = maxTime(e.until, at), true
	}
	return e
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// syncWaiting writes the actor's entry if readers would read it otherwise
// than its waiters stand now, unless a write is under way (its answer
// writes again).
func (p *poolActor) syncWaiting() {
	if p.waiting.writing || p.finished || p.cfg.ID == "" {
		return
	}
	now := time.Now()
	e := p.waitingNow(now)
	if !e.live(now) {
		e = waitingEntry{}
	}
	sent := p.waiting.sent
	if !p.waiting.unsure && (e == sent || !e.live(now) && !sent.live(now)) {
		return // nothing a reader would see differently
	}
	p.waiting.sent, p.waiting.unsure, p.waiting.writing = e, false, true
	p.stopWaitingTimer()
	if e.horizon && p.closedErr == nil {
		p.waiting.timer = p.sendAfter(time.Until(e.until.Add(-waitingHorizon/2)), &waitingTick{})
	}
	var untilMs int64
	if e.count > 0 {
		untilMs = max(e.until.Add(p.waiting.offset).UnixMilli(), 1)
	}
	cl, key, id, log := p.cfg.Client, p.keys.waiting, p.cfg.ID, p.log
	p.goRedisFor(poolCallTimeout, func(c context.Context) inlineMessage {
		err := registry.Get("pool_waiting").Run(c, cl, []string{key}, id, e.count, untilMs).Err()
		if err != nil {
			log.Warn("pool waiting count not written", zap.Int("waiting", e.count), zap.Error(err))
		}
		return &waitingDone{err: err}
	})
}

func (p *poolActor) stopWaitingTimer() {
	if p.waiting.timer != nil {
		p.waiting.timer.Stop()
		p.waiting.timer = nil
	}
}

func (p *poolActor) onWaitingDone(m *waitingDone) {
	p.busy-- // not callDone: the next write may be due before Shutdown is answered
	p.waiting.writing = false
	// A failed write may or may not have landed: the next change writes
	// whatever it is, even the same entry.
	p.waiting.unsure = m.err != nil
	if m.err == nil {
		// A failed write is tried again at the next change, not now: no
		// loop of writes while Redis is unreachable.
		p.syncWaiting()
	}
	p.maybeFinish()
}
