// Package xerr holds xsync's sentinel errors, so that the actors answer
// with the same values the root package exports (xsync.ErrClosed is
// xerr.ErrClosed), and the one classifier of Redis errors. It is not the
// API: callers match the xsync names.
package xerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/redis/go-redis/v9"
)

// The sentinels; xsync re-exports each under the same name and documents
// when it is returned.
var (
	ErrDuplicateLabel   = errors.New("xsync: duplicate label")
	ErrUnknownLabel     = errors.New("xsync: unknown label")
	ErrInvalidOptions   = errors.New("xsync: invalid options")
	ErrClosed           = errors.New("xsync: client closed")
	ErrUnavailable      = errors.New("xsync: redis unavailable")
	ErrNotObtained      = errors.New("xsync: lock not obtained")
	ErrLockNotHeld      = errors.New("xsync: lock not held")
	ErrInvalidKey       = errors.New("xsync: invalid key")
	ErrInvalidTTL       = errors.New("xsync: invalid ttl")
	ErrNotAvailable     = errors.New("xsync: not available")
	ErrNotFound         = errors.New("xsync: not found")
	ErrInvalidQuantity  = errors.New("xsync: invalid quantity")
	ErrInvalidContainer = errors.New("xsync: invalid container")
	ErrCorrupt          = errors.New("xsync: corrupt data")
)

// Redis wraps err, the failure of a Redis call made for op ("lock",
// "pool \"accounts\": put"), so that it matches a sentinel and still
// matches its cause with errors.Is and errors.As:
//
//   - ErrUnavailable: the server could not be reached, refused the
//     credentials, is loading or has no master, or did not answer in time;
//   - ErrCorrupt: a key holds another type than xsync writes there;
//   - an error that already matches a sentinel of this package is
//     returned as it is.
//
// Anything else (a reply a script should never give) is wrapped with op
// only.
func Redis(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case known(err):
		return err
	case Unavailable(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return fmt.Errorf("%w: %s: a key holds another type: %w", ErrCorrupt, op, err)
	}
	return fmt.Errorf("xsync: %s: %w", op, err)
}

// Unavailable reports whether err says that Redis could not be used at
// all, as opposed to an answer that refused the command.
func Unavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	for _, prefix := range []string{"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

func known(err error) bool {
	for _, s := range []error{ErrClosed, ErrUnavailable, ErrCorrupt, ErrNotObtained, ErrLockNotHeld,
		ErrNotAvailable, ErrNotFound, ErrInvalidOptions} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
