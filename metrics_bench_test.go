package xsync_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redisxsync/xsync"
)

// BenchmarkMetrics_LockRelease is an uncontended Lock and Release without
// a MeterProvider and with the SDK's (a manual reader, never collected):
// the cost of recording, next to that of the two Redis round trips.
func BenchmarkMetrics_LockRelease(b *testing.B) {
	for _, bc := range []struct {
		name string
		opt  func(*xsync.Options)
	}{
		{"none", func(*xsync.Options) {}},
		{"sdk", func(o *xsync.Options) {
			o.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newClient(b, bc.opt)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := c.Lock(ctx, []string{"k"})
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
