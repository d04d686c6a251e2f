package redisx

import "strconv"

// Limiter is the key of the rate-limit state of key in the limiter called
// name: "xsync:rate:github:{alice}". The key's {hash tag} decides its Redis
// Cluster slot (a key without one gets its own), so that the keys of one
// limiter spread over the cluster; a name holding a {tag} would take over,
// and is best avoided.
func (k Keys) Limiter(name, key string) string {
	return k.prefix() + ":rate:" + name + ":" + Tagged(key)
}

// Semaphore is the key of one part of the semaphore name; every part
// shares the semaphore's tag: "xsync:sem:{workers}:holders".
func (k Keys) Semaphore(name, part string) string {
	return k.prefix() + ":sem:" + Tagged(name) + ":" + part
}

// SemaphoreChannel is the pub/sub channel on which releases of the
// semaphores of DB db are published; the payload names the semaphore.
func (k Keys) SemaphoreChannel(db int) string {
	return k.prefix() + ":sem-released:" + strconv.Itoa(db)
}
