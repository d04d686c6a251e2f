// Package messages holds the messages that xsync's actors exchange: plain
// structs, sent as pointers, in Verb / VerbResult pairs, one file per actor
// family. No logic lives here.
package messages
