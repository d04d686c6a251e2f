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
	// The Sentinels' pub/sub links reconnect, as after a network cut.
	list, err := db.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
		if strings.Contains(line, " name=sentinel-") && strings.Contains(line, "-pubsub ") {
			if err := db.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 3 {
		t.Fatalf("%d pub/sub links of Sentinels on the master, want 3:\n%s", killed, list)
	}
	if err := other.Subscribe(ctx, "xsynctest-not-a-sentinel"); err != nil {
		t.Fatal(err)
	}
	if err := db.Publish(ctx, "xsynctest-not-a-sentinel", "x").Err(); err != nil {
		t.Fatal(err)
	}
	// Until every Sentinel is back and a hello has come.
	var after map[string]int64
	eventually(t, 20*time.Second, "the Sentinels' links back and a hello sent", func() bool {
		after = commandCounts(t, db)
		got := sentinelTraffic(before, after)
		return got["subscribe"] == 3 && got["publish"] > 0
	})
	raw := map[string]int64{}
	for name, n := range after {
		if !strings.HasPrefix(name, sentinelKey) && n != before[name] {
			raw[name] = n - before[name]
		}
	}
	if raw["client|setname"] < 3 || raw["subscribe"] < 4 || raw["publish"] < 2 {
		t.Fatalf("INFO commandstats counted %v: want the Sentinels' traffic in it", raw)
	}
	diff := commandsSince(t, db, before)
	if diff["publish"] != 1 || diff["subscribe"] != 1 || diff["client|setname"] != 0 {
		t.Fatalf("commandsSince = %v, want only the test's PUBLISH and SUBSCRIBE (and its CLIENT KILLs)", diff)
	}
}
