package actors

import (
	"testing"
	"time"
)

// The entry an actor's waiters make: only those a try did not serve count;
// it lasts until the latest deadline, and waiters without one give it a
// horizon that stands while more than half of it is left, so that it is
// not rewritten at every change of the queue, nor lasts forever.
func TestWaitingNow_CountsTheWaitedAndEndsWithTheirDeadlines(t *testing.T) {
	now := time.Now()
	p := &poolActor{}
	soon, later := now.Add(time.Second), now.Add(time.Minute)
	p.queue.push(&poolWaiter{wait: true, waited: true, until: soon})
	p.queue.push(&poolWaiter{wait: true, waited: true, until: later})
	p.queue.push(&poolWaiter{wait: true, until: later.Add(time.Hour)}) // not tried yet
	p.queue.push(&poolWaiter{waited: true})                            // a one-shot take
	p.queue.push(&poolWaiter{wait: true, waited: true, done: true})    // answered
	if e := p.waitingNow(now); e != (waitingEntry{count: 2, until: later}) {
		t.Fatalf("entry %+v, want 2 until the later deadline", e)
	}
	if !(waitingEntry{count: 2, until: later}).live(now) || (waitingEntry{count: 2, until: later}).live(later) {
		t.Fatal("an entry is live until its time, not at it")
	}

	p.queue.push(&poolWaiter{wait: true, waited: true}) // no deadline
	e := p.waitingNow(now)
	if e.count != 3 || !e.horizon || !e.until.Equal(now.Add(waitingHorizon)) {
		t.Fatalf("entry %+v, want 3 with the horizon %v ahead", e, waitingHorizon)
	}
	// Written: the same horizon stands while more than half is left...
	p.waiting.sent = e
	if again := p.waitingNow(now.Add(waitingHorizon / 4)); again != e {
		t.Fatalf("a quarter of the horizon later: %+v, want the entry written, %+v", again, e)
	}
	// ...and moves on past it: the one rewrite while nothing changes.
	at := now.Add(waitingHorizon/2 + time.Second)
	if moved := p.waitingNow(at); !moved.until.Equal(at.Add(waitingHorizon)) {
		t.Fatalf("past half the horizon: until %v, want %v", moved.until, at.Add(waitingHorizon))
	}
}
