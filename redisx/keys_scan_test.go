package redisx

import "testing"

// What Keys names, LockKeyOf and PoolNameOf read back as a key that names
// the same lock or pool.
func TestKeysOfScannedNamesNameTheSameKeys(t *testing.T) {
	k := Keys{Prefix: "app"}
	for _, key := range []string{"orders", "{orders}", "user:{42}:profile", "a}b", "{a}{b}", "x{y}z", "a:ready", "*"} {
		got, ok := k.LockKeyOf(k.Lock(key))
		if !ok || k.Lock(got) != k.Lock(key) {
			t.Errorf("LockKeyOf(Lock(%q)) = %q, %v: another lock", key, got, ok)
		}
		name, ok := k.PoolNameOf(k.Pool(key, "ready"), "ready")
		if !ok || k.Pool(name, "ready") != k.Pool(key, "ready") {
			t.Errorf("PoolNameOf(Pool(%q)) = %q, %v: another pool", key, name, ok)
		}
	}
	for _, raw := range []string{"app:lockq:{a}", "other:lock:{a}", "app:lock:", "app:pool:{a}:grant:1.ready", "app:pool:{a}:meta"} {
		if got, ok := k.LockKeyOf(raw); ok {
			t.Errorf("LockKeyOf(%q) = %q: not a lock key", raw, got)
		}
		if got, ok := k.PoolNameOf(raw, "ready"); ok {
			t.Errorf("PoolNameOf(%q, ready) = %q: not a ready key", raw, got)
		}
	}
	if got := (Keys{Prefix: "a*b?[c]"}).LockPattern(); got != `a\*b\?\[c\]:lock:*` {
		t.Errorf("LockPattern = %q", got)
	}
}
