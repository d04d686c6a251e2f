// Package scripts holds xsync's Lua scripts, one file per atomic operation.
// Each file starts with a comment giving its KEYS, ARGV and return shape.
package scripts

import "embed"

// FS holds every *.lua file of this folder.
//
//go:embed *.lua
var FS embed.FS
