package redisx

// Limiter is the key of the rate-limit state of key in the limiter called
// name: "xsync:rate:github:{alice}". The key's {hash tag} decides its Redis
// Cluster slot (a key without one gets its own), so that the keys of one
// limiter spread over the cluster; a name holding a {tag} would take over,
// and is best avoided.
func (k Keys) Limiter(name, key string) string {
	return k.prefix() + ":rate:" + name + ":" + Tagged(key)
}
