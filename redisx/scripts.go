package redisx

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Script is one Lua script, run with EVALSHA and, when the server does not
// know it yet (NOSCRIPT), with EVAL. It is sent once per call: the client
// that runs it must have retries off (Config.Options does that), so a script
// that timed out is never sent again behind the caller's back.
type Script struct {
	name string
	s    *redis.Script
}

// Name is the script's file name without ".lua".
func (s *Script) Name() string { return s.name }

// Hash is the SHA1 of the script's source.
func (s *Script) Hash() string { return s.s.Hash() }

// Run runs the script on c with keys and args.
func (s *Script) Run(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd {
	return s.s.Run(ctx, c, keys, args...)
}

// Registry holds the scripts of a folder, by name.
type Registry struct {
	byName map[string]*Script
}

// includePrefix starts a line of a script that stands for a library: the
// line "--#include lib_pool" is replaced by the source of lib_pool.lua.
const includePrefix = "--#include "

// NewRegistry reads every *.lua file at the top of fsys. A file whose name
// starts with "lib_" is a library, not a script: the scripts include it
// (see includePrefix). Libraries do not include others.
func NewRegistry(fsys fs.FS) (*Registry, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("redisx: read scripts: %w", err)
	}
	libs, srcs := map[string]string{}, map[string]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".lua" {
			continue
		}
		src, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("redisx: read script %s: %w", e.Name(), err)
		}
		name := strings.TrimSuffix(e.Name(), ".lua")
		if strings.HasPrefix(name, "lib_") {
			libs[name] = string(src)
		} else {
			srcs[name] = string(src)
		}
	}
	r := &Registry{byName: map[string]*Script{}}
	for name, src := range srcs {
		lines := strings.SplitAfter(src, "\n")
		for i, line := range lines {
			lib, ok := strings.CutPrefix(strings.TrimSpace(line), includePrefix)
			if !ok {
				continue
			}
			body, found := libs[lib]
			if !found {
				return nil, fmt.Errorf("redisx: script %s includes %q: no such library", name, lib)
			}
			lines[i] = body
		}
		r.byName[name] = &Script{name: name, s: redis.NewScript(strings.Join(lines, ""))}
	}
	return r, nil
}

// MustNewRegistry is NewRegistry for embedded folders, which cannot fail to
// read: it panics on error, at package initialisation.
func MustNewRegistry(fsys fs.FS) *Registry {
	r, err := NewRegistry(fsys)
	if err != nil {
		panic(err)
	}
	return r
}

// Get returns the script called name ("lock_acquire" for lock_acquire.lua).
// It panics on an unknown name: script names are constants of the program.
func (r *Registry) Get(name string) *Script {
	s, ok := r.byName[name]
	if !ok {
		panic("redisx: no script " + name)
	}
	return s
}

// Load sends every script to the server (SCRIPT LOAD), so that the first
// EVALSHA of each finds it.
func (r *Registry) Load(ctx context.Context, c redis.Scripter) error {
	for _, s := range r.byName {
		if err := s.s.Load(ctx, c).Err(); err != nil {
			return fmt.Errorf("redisx: load script %s: %w", s.name, err)
		}
	}
	return nil
}

// ErrorHook returns a go-redis hook that calls failed with the name of the
// script for every call of one of r's scripts that fails, in a pipeline
// too. A nil reply is no failure, nor is NOSCRIPT (Run resends the script
// with EVAL). failed runs on the caller's goroutine: it must not block.
func (r *Registry) ErrorHook(failed func(script string, err error)) redis.Hook {
	byHash := make(map[string]string, len(r.byName))
	for name, s := range r.byName {
		byHash[s.Hash()] = name
	}
	return scriptErrorHook{byHash: byHash, failed: failed}
}

type scriptErrorHook struct {
	byHash map[string]string
	failed func(script string, err error)
}

func (h scriptErrorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h scriptErrorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd) // cmd.Err() is set after the hooks
		h.check(cmd, err)
		return err
	}
}

func (h scriptErrorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h.check(cmd, cmd.Err())
		}
		return err
	}
}

// check reports cmd if it is a call of a known script that failed with err.
func (h scriptErrorHook) check(cmd redis.Cmder, err error) {
	if err == nil || errors.Is(err, redis.Nil) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		return
	}
	args := cmd.Args()
	if len(args) < 2 {
		return
	}
	var hash string
	switch strings.ToLower(cmd.Name()) {
	case "evalsha", "evalsha_ro":
		hash, _ = args[1].(string)
	case "eval", "eval_ro":
		src, _ := args[1].(string)
		sum := sha1.Sum([]byte(src))
		hash = hex.EncodeToString(sum[:])
	default:
		return
	}
	if name, ok := h.byHash[hash]; ok {
		h.failed(name, err)
	}
}
