// Package messages holds the messages that xsync's actors exchange: plain
// structs, sent as pointers, one file per actor family. No logic lives
// here. It is part of xsync's engine room, not its API: programs use
// package xsync.
//
// Names:
//   - a request is named for what it asks (a verb first: Acquire,
//     ReleaseLease, ReadLockStats) and its answer is that name + Result;
//   - requests without an answer say so in their doc (WithdrawAcquire,
//     Unsubscribe);
//   - the messages of a pool actor carry the prefix Pool (PoolTake,
//     PoolWithdrawTake, PoolReadStats), since one client has many of them;
//   - an answer's Err matches one of xsync's exported sentinels.
package messages
