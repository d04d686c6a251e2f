package xsync

// Pool is a pool of rate-limited containers; see Client.Pool.
type Pool struct{}
