package actors

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The calls of an actor that start within callGrain of each other, with
// one timeout, share a context; it ends no earlier than each call asked
// and at most callGrain later.
func TestSharedDeadlines_ShareOneContextWithinTheGrain(t *testing.T) {
	var d sharedDeadlines
	defer d.release()
	a := d.context(5 * time.Second)
	b := d.context(5 * time.Second)
	after := time.Now()
	if a != b {
		t.Fatal("two calls a moment apart got two contexts")
	}
	at, ok := a.Deadline()
	if !ok {
		t.Fatal("the context has no deadline")
	}
	// Each call asked for a deadline no later than after+5s, and the
	// context's is its first call's plus callGrain at most.
	if at.Before(after.Add(5*time.Second)) || at.After(after.Add(5*time.Second+callGrain)) {
		t.Fatalf("deadline %v after the calls, want within [5s, 5s+%v]", at.Sub(after), callGrain)
	}
	if a.Err() != nil {
		t.Fatalf("a shared context is done before its deadline: %v", a.Err())
	}
}

// Another timeout gets a context of its own, and so does a call that
// starts once the shared deadline would be too early for it.
func TestSharedDeadlines_GiveANewContextWhenTheLastEndsTooEarly(t *testing.T) {
	var d sharedDeadlines
	defer d.release()
	long := d.context(5 * time.Second)
	short := d.context(time.Second)
	if short == long {
		t.Fatal("a 1s call got the context of a 5s call")
	}
	if at, _ := short.Deadline(); time.Until(at) > time.Second+callGrain {
		t.Fatalf("the 1s call's context ends in %v", time.Until(at))
	}
	// A context whose deadline passed is not handed out again.
	first := d.context(0)
	at, _ := first.Deadline()
	<-first.Done() // ends by its own timer, within callGrain
	if time.Now().Before(at) {
		t.Fatalf("the context ended %v before its deadline", time.Until(at))
	}
	if next := d.context(0); next == first {
		t.Fatal("a call got a context whose deadline had passed")
	}
}

// release stops the last context, so that a finished actor leaves no timer
// running.
func TestSharedDeadlines_ReleaseEndsTheLastContext(t *testing.T) {
	var d sharedDeadlines
	ctx := d.context(time.Minute)
	d.release()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("the last context still runs after release")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("ended with %v, want context.Canceled", ctx.Err())
	}
}
