// Package scripts holds xsync's Lua scripts, one file per atomic operation.
// Each file starts with a comment giving its KEYS, ARGV and return shape.
// The lib_*.lua files are libraries, not scripts: a script includes one
// with a line "--#include lib_pool", replaced by the library's source when
// the scripts are registered (see redisx.NewRegistry).
//
// It is part of xsync's engine room, not its API: the scripts' KEYS, ARGV
// and replies change with the actors that call them.
package scripts

import "embed"

// FS holds every *.lua file of this folder.
//
//go:embed *.lua
var FS embed.FS
