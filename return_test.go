package xsync_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

// Containers taken but not used are handed back with Return: each is ready
// again as before its take, unless something overtook it since; Return
// twice does nothing more; a container no take of the pool handed out is
// refused whole.
func TestPool_ReturnRestoresContainersTakenButNotUsed(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour}, xsync.Container{ID: "b", Interval: time.Hour},
		xsync.Container{ID: "c", Interval: time.Hour})
	before := map[string]xsync.Container{"a": get(t, p, "a"), "b": get(t, p, "b"), "c": get(t, p, "c")}

	taken, err := p.Ask(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	// c is cooled down by its user meanwhile: it stays as it is.
	if err := p.Cooldown(ctx, "c", time.Minute); err != nil {
		t.Fatal(err)
	}
	cooled := get(t, p, "c")

	// Refused whole: a container built by hand, one of another pool.
	other := newClient(t, withPrefix(prefix)).Pool("other")
	put(t, other, xsync.Container{ID: "x"})
	x, err := other.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]xsync.Container{"built by hand": {ID: "a"}, "of another pool": x} {
		if err := p.Return(ctx, taken[0], bad); !errors.Is(err, xsync.ErrInvalidContainer) {
			t.Fatalf("Return of a container %s: %v, want ErrInvalidContainer", name, err)
		}
	}
	if got := get(t, p, taken[0].ID); got.UsageCount != 1 {
		t.Fatalf("a refused Return changed %s: %+v", taken[0].ID, got)
	}

	// One container, then the rest (twice): each restored once.
	if err := p.Return(ctx, taken[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.Return(ctx, taken...); err != nil {
		t.Fatal(err)
	}
	if err := p.Return(ctx, taken...); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if got := get(t, p, id); got != before[id] {
			t.Fatalf("%s after Return: %+v, want %+v as before the take", id, got, before[id])
		}
	}
	if got := get(t, p, "c"); got != cooled {
		t.Fatalf("c, cooled down after the take, after Return: %+v, want %+v left as it was", got, cooled)
	}
}

// A Return wakes the waiters of every client.
func TestPool_ReturnWakesWaitersOfOtherClients(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	w := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	a, err := p.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := w.WaitAskOneAsync(ctx)
	poolSettled(t, w)
	select {
	case <-f.Done():
		t.Fatal("served while a cools down for an hour")
	default:
	}
	if err := p.Return(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := f.Wait(ctx)
	if err != nil || got.ID != "a" || got.UsageCount != 1 {
		t.Fatalf("the waiter after the Return: %+v, %v; want a with UsageCount 1", got, err)
	}
}
