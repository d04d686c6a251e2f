package xsync_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

// The cost of one Report, through the pool's actor: one script call, which
// must not grow with the pool's size. The outcomes cycle so that every
// branch of the script runs (Succeeded clears what Failed and Blocked
// counted; nothing retires).
func BenchmarkPoolReport(b *testing.B) {
	ctx := b.Context()
	outcomes := []xsync.Outcome{xsync.Failed, xsync.Blocked, xsync.Succeeded}
	for _, n := range []int{100, 100_000} {
		p := newClient(b).Pool("bench", xsync.Health(xsync.HealthPolicy{Backoff: time.Millisecond}))
		fillPool(b, p, n, "cookie=0123456789abcdef", time.Hour)
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("containers=%d/goroutines=%d", n, g), func(b *testing.B) {
				concurrently(b, g, func(i int) error {
					return p.Report(ctx, fmt.Sprintf("c%07d", i%n), outcomes[i%len(outcomes)])
				})
			})
		}
	}
}
