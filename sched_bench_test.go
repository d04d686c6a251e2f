package xsync_test

import "runtime/metrics"

// wakeups counts the goroutine wake-ups of the process so far: a goroutine
// made runnable, then run (a hand-off from another goroutine, or a wait on
// the network that ended). The runtime times one in eight of them
// (/sched/latencies:seconds), so this is that count times eight: exact
// enough over thousands of operations, and a count that the machine's load
// does not distort, unlike the time.
func wakeups() float64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return float64(n) * 8
}
