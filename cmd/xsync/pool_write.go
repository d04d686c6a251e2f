package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

func (a *app) poolPut() *cobra.Command {
	var c xsync.Container
	cmd := &cobra.Command{
		Use:   "put NAME --id ID [--interval D] [--ttl D] [--data S]",
		Short: "Add a container to a pool, or update it (keeping its usage and cooldown)",
		Args:  positional("NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := c.Validate(); err != nil {
				return usageError{err.Error()}
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			if err := cl.Pool(args[0]).Put(a.ctx, c); err != nil {
				return failed(err)
			}
			fmt.Fprintf(a.stdout, "put %s into pool %s\n", c.ID, args[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.ID, "id", "", "the container's id (required)")
	f.DurationVar(&c.Interval, "interval", 0, "minimum time between two uses, e.g. 2s (default: no limit)")
	f.DurationVar(&c.TTL, "ttl", 0, "how long the container lives, e.g. 24h (default: forever)")
	f.StringVar(&c.Data, "data", "", "the container's payload, e.g. cookies")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}
func (a *app) poolCooldown() *cobra.Command {
	return &cobra.Command{
		Use:   "cooldown NAME ID DUR",
		Short: "Keep a container from use until now+DUR (e.g. 10m), at least",
		Args:  positional("NAME", "ID", "DUR"),
		RunE: func(_ *cobra.Command, args []string) error {
			d, err := time.ParseDuration(args[2])
			if err != nil || d < 0 {
				return usagef("cooldown %q: want a duration such as 90s or 10m", args[2])
			}
			p, err := a.pool(args[0])
			if err != nil {
				return err
			}
			if err := p.Cooldown(a.ctx, args[1], d); errors.Is(err, xsync.ErrNotFound) {
				return failure{fmt.Errorf("pool %s has no container %q", p.Name(), args[1])}
			} else if err != nil {
				return failed(err)
			}
			c, err := p.Get(a.ctx, args[1])
			if err != nil {
				return failed(err)
			}
			s, err := p.Stats(a.ctx)
			if err != nil {
				return failed(err)
			}
			fmt.Fprintf(a.stdout, "%s of pool %s is ready %s\n", c.ID, p.Name(), until(c.NextAvailable, s.At, "now"))
			return nil
		},
	}
}

func (a *app) poolRm() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME ID...",
		Short: "Remove containers from a pool",
		Args:  positional("NAME", "ID..."),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := a.pool(args[0])
			if err != nil {
				return err
			}
			var missing []string
			for _, id := range args[1:] {
				if _, err := p.Get(a.ctx, id); errors.Is(err, xsync.ErrNotFound) {
					missing = append(missing, id)
				} else if err != nil {
					return failed(err)
				}
			}
			n, err := p.Remove(a.ctx, args[1:]...)
			if err != nil {
				return failed(err)
			}
			fmt.Fprintf(a.stdout, "removed %d containers from pool %s\n", n, p.Name())
			if len(missing) > 0 {
				return failure{fmt.Errorf("pool %s has no container %s", p.Name(), strings.Join(quoteAll(missing), ", "))}
			}
			return nil
		},
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
