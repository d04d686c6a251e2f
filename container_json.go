package xsync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// limitedModel is Container in the JSON shape of the seed's LimitedModel
// (the Python package's): times in milliseconds since the epoch, durations
// in milliseconds, 0 for a zero time or duration; plus the design's
// "failures" and "retired", the container's health.
type limitedModel struct {
	ID                string `json:"id"`
	CT                int64  `json:"ct"`
	TTLMs             int64  `json:"ttl_ms"`
	IntervalMs        int64  `json:"interval_ms"`
	NextTimeAvailable int64  `json:"next_time_available"`
	Containers        string `json:"containers"`
	UsageCount        int64  `json:"usage_count"`
	Failures          int64  `json:"failures"`
	Retired           bool   `json:"retired"`
}

// MarshalJSON writes c with the seed's LimitedModel field names, so that a
// pool dumped by Go and one dumped by the Python package read alike:
//
//	{"id":"alice","ct":1733130000000,"ttl_ms":0,"interval_ms":2000,
//	 "next_time_available":1733130002000,"containers":"cookie=1","usage_count":3,
//	 "failures":0,"retired":false}
//
// Times are milliseconds since the epoch (0 for a zero time; NextAvailable
// rounded up), durations whole milliseconds (rounded up, as Put stores
// them), Data is "containers".
func (c Container) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitedModel{
		ID:                c.ID,
		CT:                msOf(c.CreatedAt, false),
		TTLMs:             roundUpMs(c.TTL),
		IntervalMs:        roundUpMs(c.Interval),
		NextTimeAvailable: msOf(c.NextAvailable, true),
		Containers:        c.Data,
		UsageCount:        c.UsageCount,
		Failures:          c.Failures,
		Retired:           c.Retired,
	})
}

// UnmarshalJSON reads the shape MarshalJSON writes, and what the Python
// package writes: numbers may have a fraction (rounded to the millisecond)
// or be null (0), an id may be a number, "containers" may be any JSON value
// (a list of cookies is kept as its JSON text), and other fields are
// ignored. 0 stands for a zero time or duration. It checks types only:
// Pool.Put says whether the container can be stored.
func (c *Container) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID                json.RawMessage `json:"id"`
		CT                json.RawMessage `json:"ct"`
		TTLMs             json.RawMessage `json:"ttl_ms"`
		IntervalMs        json.RawMessage `json:"interval_ms"`
		NextTimeAvailable json.RawMessage `json:"next_time_available"`
		Containers        json.RawMessage `json:"containers"`
		UsageCount        json.RawMessage `json:"usage_count"`
		Failures          json.RawMessage `json:"failures"`
		Retired           json.RawMessage `json:"retired"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidContainer, err)
	}
	var out Container
	var err error
	field := func(name string, v json.RawMessage, set func(int64)) {
		if err != nil {
			return
		}
		var n int64
		if n, err = jsonInt(v); err != nil {
			err = fmt.Errorf("%w: %s: %v", ErrInvalidContainer, name, err)
			return
		}
		set(n)
	}
	if out.ID, err = jsonText(raw.ID, false); err != nil {
		return fmt.Errorf("%w: id: %v", ErrInvalidContainer, err)
	}
	field("ct", raw.CT, func(n int64) { out.CreatedAt = timeOfMs(n) })
	field("ttl_ms", raw.TTLMs, func(n int64) { out.TTL = time.Duration(n) * time.Millisecond })
	field("interval_ms", raw.IntervalMs, func(n int64) { out.Interval = time.Duration(n) * time.Millisecond })
	field("next_time_available", raw.NextTimeAvailable, func(n int64) { out.NextAvailable = timeOfMs(n) })
	field("usage_count", raw.UsageCount, func(n int64) { out.UsageCount = n })
	field("failures", raw.Failures, func(n int64) { out.Failures = n })
	if err != nil {
		return err
	}
	if len(raw.Retired) > 0 && !bytes.Equal(raw.Retired, []byte("null")) {
		if err := json.Unmarshal(raw.Retired, &out.Retired); err != nil {
			return fmt.Errorf("%w: retired: %v", ErrInvalidContainer, err)
		}
	}
	if out.Data, err = jsonText(raw.Containers, true); err != nil {
		return fmt.Errorf("%w: containers: %v", ErrInvalidContainer, err)
	}
	*c = out
	return nil
}

// jsonInt reads a JSON number (a fraction is rounded) or null (0).
func jsonInt(v json.RawMessage) (int64, error) {
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return 0, nil
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) >= 1<<62 {
		return 0, fmt.Errorf("%s is not a number of milliseconds", v)
	}
	return int64(math.Round(f)), nil
}

// jsonText reads a JSON string, or a number as its text; any other value
// as its JSON text when anyValue, else it is an error. null is "".
func jsonText(v json.RawMessage, anyValue bool) (string, error) {
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return "", nil
	}
	switch v[0] {
	case '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(v), nil
	}
	if !anyValue {
		return "", fmt.Errorf("%s is not a string", v)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return "", err
	}
	return compact.String(), nil
}

// msOf is t in milliseconds since the epoch, 0 for the zero time.
func msOf(t time.Time, roundUp bool) int64 {
	if t.IsZero() {
		return 0
	}
	ms := t.UnixMilli()
	if roundUp && t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

func timeOfMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func roundUpMs(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond > 0 {
		ms++
	}
	return ms
}
