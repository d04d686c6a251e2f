package xsync_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The command counts of the tests leave out what the Sentinels send the
// master (hellos, and the CLIENT SETNAME and SUBSCRIBE of a link that
// reconnects), and only that: a PUBLISH and a SUBSCRIBE of anyone else in
// the same window are still counted.
func TestSentinel_CommandCountsLeaveOutOnlyTheSentinelsTraffic(t *testing.T) {
	requireTopology(t, "sentinel")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db := rawDB(t, 0)
	other := db.Subscribe(ctx) // connected before the window: no HELLO in it
	defer other.Close()
	if err := other.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	before := commandCounts(t, db)
	// One Sentinel's pub/sub link reconnects, as after a network cut. One
	// only: two Sentinels that lose their link to the master may agree
	// that it is down and fail it over.
	list, err := db.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := ""
	for _, c := range parseClientList(list) {
		if strings.HasPrefix(c.name, "sentinel-") && strings.HasSuffix(c.name, "-pubsub") {
			if err := db.ClientKillByFilter(ctx, "ID", c.id).Err(); err != nil {
				t.Fatal(err)
			}
			killed = c.name
			break
		}
	}
	if killed == "" {
		t.Fatalf("no pub/sub link of a Sentinel on the master:\n%s", list)
	}
	if err := other.Subscribe(ctx, "xsynctest-not-a-sentinel"); err != nil {
		t.Fatal(err)
	}
	if err := db.Publish(ctx, "xsynctest-not-a-sentinel", "x").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, killed+" back and a hello sent", func() bool {
		got := sentinelTraffic(before, commandCounts(t, db))
		return got["subscribe"] == 1 && got["publish"] > 0
	})
	// Counted again: a link named between the last INFO and its notes is
	// in this INFO.
	after := commandCounts(t, db)
	raw := map[string]int64{}
	for name, n := range after {
		if !strings.HasPrefix(name, sentinelKey) && n != before[name] {
			raw[name] = n - before[name]
		}
	}
	if raw["client|setname"] < 1 || raw["subscribe"] < 2 || raw["publish"] < 2 {
		t.Fatalf("INFO commandstats counted %v: want the Sentinel's traffic in it", raw)
	}
	diff := commandsSince(t, db, before)
	if diff["publish"] != 1 || diff["subscribe"] != 1 || diff["client|setname"] != 0 {
		t.Fatalf("commandsSince = %v, want only the test's PUBLISH and SUBSCRIBE (and its CLIENT KILL)", diff)
	}
}
