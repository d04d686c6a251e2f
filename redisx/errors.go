package redisx

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// corruptPrefix starts the error reply of a script that met data it did not
// write (see the lib_*.lua files): it fails before writing anything.
const corruptPrefix = "XSYNC_CORRUPT "

// Failure sorts an error of a Redis call into what the caller can act on.
type Failure int

const (
	// Unavailable: Redis could not be reached, did not answer in time, or
	// refused to serve (a transport error, a call's deadline, LOADING,
	// READONLY, ...).
	Unavailable Failure = iota
	// Corrupt: a key holds data xsync did not write (a script's corrupt
	// reply, or WRONGTYPE); Detail says which.
	Corrupt
)

// Classify tells what kind of failure err (not nil) is, and a one-line
// detail of it without the script's location.
func Classify(err error) (Failure, string) {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if rest, ok := strings.CutPrefix(msg, corruptPrefix); ok {
			if i := strings.Index(rest, " script: "); i >= 0 {
				rest = rest[:i]
			}
			return Corrupt, rest
		}
		if strings.HasPrefix(msg, "WRONGTYPE") {
			return Corrupt, "a key holds another type: " + msg
		}
	}
	return Unavailable, err.Error()
}
