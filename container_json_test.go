package xsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

func TestContainerJSON_UsesTheSeedsLimitedModelNames(t *testing.T) {
	c := xsync.Container{
		ID:            "alice",
		CreatedAt:     time.UnixMilli(1733130000000),
		TTL:           time.Hour,
		Interval:      2 * time.Second,
		NextAvailable: time.UnixMilli(1733130002000),
		Data:          "cookie=1",
		UsageCount:    3,
		Failures:      2,
		Retired:       true,
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"alice","ct":1733130000000,"ttl_ms":3600000,"interval_ms":2000,` +
		`"next_time_available":1733130002000,"containers":"cookie=1","usage_count":3,"failures":2,"retired":true}`
	if string(b) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, want)
	}
	var back xsync.Container
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !sameContainer(back, c) {
		t.Fatalf("round trip: %+v, want %+v", back, c)
	}
}

func TestContainerJSON_ZeroValuesAreZeroes(t *testing.T) {
	b, err := json.Marshal(xsync.Container{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","ct":0,"ttl_ms":0,"interval_ms":0,"next_time_available":0,"containers":"","usage_count":0,"failures":0,"retired":false}`
	if string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var back xsync.Container
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.CreatedAt.IsZero() || !back.NextAvailable.IsZero() || back != (xsync.Container{ID: "x"}) {
		t.Fatalf("round trip of zeroes: %+v", back)
	}
}

func TestContainerJSON_RoundsSubMillisecondsUpAsPutDoes(t *testing.T) {
	c := xsync.Container{ID: "x", TTL: 1500 * time.Microsecond, Interval: time.Microsecond,
		NextAvailable: time.UnixMicro(1733130002000_001)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m["ttl_ms"] != json.Number("2") || m["interval_ms"] != json.Number("1") || m["next_time_available"] != json.Number("1733130002001") {
		t.Fatalf("rounded = %v, want ttl 2, interval 1, next ...001 (never earlier than stored)", m)
	}
}

// What the Python package writes: float timestamps, nulls, a list of
// cookies as the payload, a numeric id, fields Go does not know.
func TestContainerJSON_ReadsWhatThePythonPackageWrites(t *testing.T) {
	in := `{"id": 42, "ct": 1733130000000.4, "ttl_ms": null, "interval_ms": 1500.0,
		"next_time_available": 1733130001500, "containers": [{"name": "sid", "value": "abc"}],
		"usage_count": 7, "owner": "crawler-3"}`
	var c xsync.Container
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := xsync.Container{ID: "42", CreatedAt: time.UnixMilli(1733130000000), Interval: 1500 * time.Millisecond,
		NextAvailable: time.UnixMilli(1733130001500), Data: `[{"name":"sid","value":"abc"}]`, UsageCount: 7}
	if !sameContainer(c, want) {
		t.Fatalf("Unmarshal = %+v\nwant %+v", c, want)
	}
}

func TestContainerJSON_BadInputIsErrInvalidContainer(t *testing.T) {
	// (Text that is not JSON at all is a *json.SyntaxError of
	// encoding/json's, found before UnmarshalJSON is called.)
	for _, in := range []string{
		`{"id": {"nested": 1}}`,
		`{"id": "x", "ttl_ms": "soon"}`,
		`{"id": "x", "ct": true}`,
		`{"id": "x", "interval_ms": 1e300}`,
		`{"id": "x", "failures": "many"}`,
		`{"id": "x", "retired": "yes"}`,
		`[1, 2]`,
	} {
		var c xsync.Container
		if err := json.Unmarshal([]byte(in), &c); !errors.Is(err, xsync.ErrInvalidContainer) {
			t.Errorf("Unmarshal(%s) = %v, want ErrInvalidContainer", in, err)
		}
	}
}

func TestContainerValidate_SaysWhatPutWouldRefuse(t *testing.T) {
	p := newClient(t).Pool("checks")
	for _, c := range []xsync.Container{
		{},
		{ID: "x", TTL: -time.Second},
		{ID: "x", Interval: -time.Second},
		{ID: "x", CreatedAt: time.UnixMilli(-5)},
	} {
		err := c.Validate()
		if !errors.Is(err, xsync.ErrInvalidContainer) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidContainer", c, err)
		}
		if putErr := p.Put(context.Background(), c); !errors.Is(putErr, xsync.ErrInvalidContainer) {
			t.Errorf("Put(%+v) = %v, but Validate said %v", c, putErr, err)
		}
	}
	if err := (xsync.Container{ID: "ok", Interval: time.Second}).Validate(); err != nil {
		t.Errorf("Validate of a good container: %v", err)
	}
}

// A pool listed, written as JSON lines and put into another pool holds
// the same containers: IDs, CreatedAt, TTL, Interval and Data.
func TestContainerJSON_ListThenPutRoundTripsAPool(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	src, dst := c.Pool("src"), c.Pool("dst")
	for i := range 5 {
		put(t, src, xsync.Container{ID: fmt.Sprintf("acct-%d", i), TTL: time.Duration(i) * time.Hour,
			Interval: time.Duration(i+1) * time.Second, Data: fmt.Sprintf(`{"cookie":"%d"}`, i)})
	}
	listed, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, ct := range listed {
		b, err := json.Marshal(ct)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b)
	}
	var back []xsync.Container
	for _, l := range lines {
		var ct xsync.Container
		if err := json.Unmarshal(l, &ct); err != nil {
			t.Fatal(err)
		}
		back = append(back, ct)
	}
	put(t, dst, back...)
	copied, err := dst.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(copied) != len(listed) {
		t.Fatalf("%d containers copied, want %d", len(copied), len(listed))
	}
	for i := range listed {
		a, b := listed[i], copied[i]
		if a.ID != b.ID || !a.CreatedAt.Equal(b.CreatedAt) || a.TTL != b.TTL || a.Interval != b.Interval || a.Data != b.Data {
			t.Errorf("copied %+v\nfrom   %+v", b, a)
		}
	}
}
