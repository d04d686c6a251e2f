package redisx

import "strings"

// The inverse of Keys' names, for the inspection calls that find keys with
// SCAN and must say which lock or pool each belongs to.

// LockPattern is the SCAN MATCH pattern of every lock key under the prefix.
func (k Keys) LockPattern() string { return escapeGlob(k.prefix()+":lock:") + "*" }

// PoolPattern is the SCAN MATCH pattern of every pool key under the prefix.
func (k Keys) PoolPattern() string { return escapeGlob(k.prefix()+":pool:") + "*" }

// LockKeyOf returns the caller's key of lock key raw ("xsync:lock:{orders}"
// gives "orders"), and false when raw is not a lock key under the prefix.
// A key that was given with its own tag ("user:{42}") comes back as given;
// one that got a tag of its own comes back without it, which names the same
// lock.
func (k Keys) LockKeyOf(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, k.prefix()+":lock:")
	if !ok || rest == "" {
		return "", false
	}
	return untagged(rest), true
}

// PoolNameOf returns the name of the pool whose part key raw is
// ("xsync:pool:{accounts}:ready" and part "ready" give "accounts"), and
// false when raw is not that part of a pool under the prefix.
func (k Keys) PoolNameOf(raw, part string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, k.prefix()+":pool:")
	if !ok {
		return "", false
	}
	tagged, ok := strings.CutSuffix(rest, ":"+part)
	if !ok || !hasTag(tagged) {
		return "", false
	}
	return untagged(tagged), true
}

// untagged undoes Tagged for a key that was wrapped whole: "{orders}"
// becomes "orders" (and "{a}b}" becomes "a}b", which Tagged wraps back); a
// key whose tag is only part of it stays as it is.
func untagged(key string) string {
	if len(key) > 2 && key[0] == '{' && key[len(key)-1] == '}' && !strings.Contains(key[1:len(key)-1], "{") {
		return key[1 : len(key)-1]
	}
	return key
}

// escapeGlob escapes the characters that SCAN MATCH patterns give a meaning.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
