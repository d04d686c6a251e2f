// Package xerr holds xsync's sentinel errors, so that the actors answer
// with the same values the root package exports (xsync.ErrClosed is
// xerr.ErrClosed), and the one place where a failed Redis call becomes an
// error that matches one of them. It is not the API: callers match the
// xsync names.
package xerr

import (
	"errors"
	"fmt"

	"github.com/redisxsync/xsync/redisx"
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
	ErrInvalidOutcome   = errors.New("xsync: invalid outcome")
	ErrInvalidContainer = errors.New("xsync: invalid container")
	ErrCorrupt          = errors.New("xsync: corrupt data")
	ErrNotReplicated    = errors.New("xsync: not confirmed by replicas")
)

// Redis turns err, the failure of a Redis call made for op ("lock",
// `pool "accounts": put`), into an error that matches a sentinel, as
// redisx.Classify sorts it:
//
//   - ErrCorrupt for data xsync did not write (the script changed
//     nothing), with the script's one-line detail;
//   - ErrUnavailable for anything else: Redis could not be reached,
//     refused the credentials or did not answer in time; it wraps the
//     cause, so errors.As(err, new(*net.OpError)) still works.
//
// An error that already matches one of the sentinels is returned as it is,
// and nil as nil.
func Redis(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case known(err):
		return err
	}
	if kind, detail := redisx.Classify(err); kind == redisx.Corrupt {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, op, detail)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

func known(err error) bool {
	for _, s := range []error{ErrClosed, ErrUnavailable, ErrCorrupt, ErrNotObtained, ErrLockNotHeld,
		ErrNotAvailable, ErrNotFound, ErrInvalidOptions, ErrNotReplicated} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
