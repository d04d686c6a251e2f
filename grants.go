package xsync

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redisxsync/xsync/messages"
)

// grantLife is how long a take's grant record lives in Redis, and so how
// long Return can give its containers back.
const grantLife = 30 * time.Second

// grantRef names a container as a take handed it out.
type grantRef struct {
	id     string
	nextUs int64
	usage  int64
}

func refOf(id string, next time.Time, usage int64) grantRef {
	return grantRef{id: id, nextUs: next.UnixMicro(), usage: usage}
}

// grantBook remembers, for grantLife, the take (its token) that handed out
// each container a Pool's takes returned, so that Return can give it back
// by its grant record while Container stays a plain comparable value.
type grantBook struct {
	mu     sync.Mutex
	tokens map[grantRef]string
	order  []grantRef // oldest first, with when they were added
	added  []time.Time
}

func (b *grantBook) add(cs []messages.Container) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens == nil {
		b.tokens = map[grantRef]string{}
	}
	// Forget what is past its record's life first: the book stays as
	// small as the takes of the last grantLife.
	n := 0
	for n < len(b.added) && now.Sub(b.added[n]) > grantLife {
		delete(b.tokens, b.order[n])
		n++
	}
	b.order, b.added = slices.Delete(b.order, 0, n), slices.Delete(b.added, 0, n)
	for _, c := range cs {
		r := refOf(c.ID, c.NextAvailable, c.UsageCount)
		b.tokens[r] = c.Grant
		b.order, b.added = append(b.order, r), append(b.added, now)
	}
}

// lookup builds the PoolReturn of cs; an error names a container the book
// does not hold.
func (b *grantBook) lookup(cs []Container) (*messages.PoolReturn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msg := &messages.PoolReturn{}
	index := map[string]int{}
	for _, c := range cs {
		token, ok := b.tokens[refOf(c.ID, c.NextAvailable, c.UsageCount)]
		if !ok {
			return nil, fmt.Errorf("container %q was not handed out by a take of this pool in the last %v", c.ID, grantLife)
		}
		i, seen := index[token]
		if !seen {
			i = len(msg.Tokens)
			index[token] = i
			msg.Tokens, msg.IDs = append(msg.Tokens, token), append(msg.IDs, nil)
		}
		if !slices.Contains(msg.IDs[i], c.ID) {
			msg.IDs[i] = append(msg.IDs[i], c.ID)
		}
	}
	return msg, nil
}
