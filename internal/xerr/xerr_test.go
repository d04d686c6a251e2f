package xerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redisxsync/xsync/internal/xerr"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisError is an error reply of the server, as go-redis returns one.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

// Redis sorts the failures of a Redis call into the sentinels, and keeps
// the cause reachable (a corrupt reply keeps its detail only).
func TestRedis_SortsFailuresIntoSentinels(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"refused connection", fmt.Errorf("redis 127.0.0.1:1 db 0: %w", refused), xerr.ErrUnavailable},
		{"connection lost", io.EOF, xerr.ErrUnavailable},
		{"no answer in time", context.DeadlineExceeded, xerr.ErrUnavailable},
		{"pool timeout", redis.ErrPoolTimeout, xerr.ErrUnavailable},
		{"closed go-redis client", redis.ErrClosed, xerr.ErrUnavailable},
		{"refused credentials", redisError("WRONGPASS invalid username-password pair"), xerr.ErrUnavailable},
		{"no credentials", redisError("NOAUTH Authentication required."), xerr.ErrUnavailable},
		{"server loading", redisError("LOADING Redis is loading the dataset in memory"), xerr.ErrUnavailable},
		{"key of another type", redisError("WRONGTYPE Operation against a key holding the wrong kind of value"), xerr.ErrCorrupt},
		{"data a script did not write", redisError("XSYNC_CORRUPT p:meta is a list, not a hash script: 1f2e"), xerr.ErrCorrupt},
		{"already a sentinel", fmt.Errorf("%w: pool %q", xerr.ErrNotFound, "p"), xerr.ErrNotFound},
		{"any other failure", redisError("ERR user_script:1: boom"), xerr.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := xerr.Redis("op", tc.err)
			if tc.want != xerr.ErrCorrupt && !errors.Is(got, tc.err) {
				t.Fatalf("Redis(%v) = %v: the cause is lost", tc.err, got)
			}
			for _, s := range []error{xerr.ErrUnavailable, xerr.ErrCorrupt, xerr.ErrNotFound} {
				if errors.Is(got, s) != (s == tc.want) {
					t.Fatalf("Redis(%v) = %v: matches %v = %v, want %v", tc.err, got, s, errors.Is(got, s), s == tc.want)
				}
			}
		})
	}
	var opErr *net.OpError
	if got := xerr.Redis("connect", refused); !errors.As(got, &opErr) {
		t.Fatalf("Redis(%v) = %v: errors.As finds no *net.OpError", refused, got)
	}
	if xerr.Redis("op", nil) != nil {
		t.Fatal("Redis(nil) is not nil")
	}
}
