package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

// lockRow is one lock, in a table or a JSON line.
type lockRow struct {
	Key     string `json:"key"`
	Held    bool   `json:"held"`
	Token   string `json:"token"`
	TTLMs   int64  `json:"ttl_ms"` // -1: never expires; 0: free
	Fence   int64  `json:"fence"`
	Waiting int    `json:"waiting"`

	ttl time.Duration
}

func lockRowOf(i xsync.LockInfo) lockRow {
	r := lockRow{Key: i.Key, Held: i.Held, Token: i.Token, Fence: i.Fence, Waiting: i.Waiting, ttl: i.TTL}
	r.TTLMs = i.TTL.Milliseconds()
	if i.TTL < 0 {
		r.TTLMs = -1
	}
	return r
}

var lockHeader = []string{"KEY", "HOLDER", "TTL", "FENCE", "WAITING"}

func (r lockRow) cells() []string {
	holder, ttl := "free", "-"
	if r.Held {
		holder = clip(r.Token, 12)
		switch {
		case r.ttl < 0:
			ttl = "never expires"
		default:
			ttl = human(r.ttl)
		}
	}
	return []string{clip(r.Key, 32), holder, ttl, fmt.Sprint(r.Fence), fmt.Sprint(r.Waiting)}
}

func (a *app) lockCommand() *cobra.Command {
	lock := &cobra.Command{
		Use:   "lock",
		Short: "Inspect and break locks",
		Args:  cobra.ArbitraryArgs,
		RunE:  needVerb,
	}
	lock.AddCommand(a.lockLs(), a.lockShow(), a.lockBreak())
	return lock
}

func (a *app) lockLs() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the locks held",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			infos, err := c.Locks(a.ctx)
			if err != nil {
				return failed(err)
			}
			return a.printLocks(infos)
		},
	}
}

func (a *app) printLocks(infos []xsync.LockInfo) error {
	if a.json {
		for _, i := range infos {
			if err := jsonLine(a.stdout, lockRowOf(i)); err != nil {
				return failed(err)
			}
		}
		return nil
	}
	if len(infos) == 0 {
		fmt.Fprintf(a.stderr, "no locks held under prefix %q (db %d)\n", a.prefix, a.dbOf())
		return nil
	}
	t := newTable(a.stdout, lockHeader...)
	for _, i := range infos {
		t.row(lockRowOf(i).cells()...)
	}
	return failed(t.flush())
}

// lockInfo reads the lock on key, failing when xsync never locked it.
func (a *app) lockInfo(key string) (xsync.LockInfo, error) {
	c, err := a.connect()
	if err != nil {
		return xsync.LockInfo{}, err
	}
	info, err := c.LockInfo(a.ctx, key)
	if err != nil {
		return info, failed(err)
	}
	if !info.Held && info.Fence == 0 && info.Waiting == 0 {
		return info, failure{fmt.Errorf("no lock %q under prefix %q (db %d)", key, a.prefix, a.dbOf())}
	}
	return info, nil
}

func (a *app) lockShow() *cobra.Command {
	return &cobra.Command{
		Use:   "show KEY",
		Short: "Show who holds a lock, for how long, and who waits",
		Args:  positional("KEY"),
		RunE: func(_ *cobra.Command, args []string) error {
			info, err := a.lockInfo(args[0])
			if err != nil {
				return err
			}
			if a.json {
				return failed(jsonLine(a.stdout, lockRowOf(info)))
			}
			r := lockRowOf(info)
			t := newTable(a.stdout)
			holder, ttl := "nobody (free)", "-"
			if info.Held {
				holder = info.Token
				ttl = r.cells()[2]
			}
			t.row("key:", info.Key)
			t.row("holder:", holder)
			t.row("ttl:", ttl)
			t.row("fence:", fmt.Sprint(info.Fence))
			t.row("waiting:", plural(info.Waiting, "client"))
			return failed(t.flush())
		},
	}
}

func (a *app) lockBreak() *cobra.Command {
	return &cobra.Command{
		Use:   "break KEY",
		Short: "Free a held lock; the next client waiting for it gets it",
		Long: "break frees the lock on KEY whoever holds it, and hands it to the next client\n" +
			"waiting for it, as a release does. The holder learns it at its next renewal or\n" +
			"Refresh (its lease's Lost channel closes); until then it may still believe it\n" +
			"holds the lock: the fencing token of the next holder is higher.",
		Args: positional("KEY"),
		RunE: func(_ *cobra.Command, args []string) error {
			info, err := a.lockInfo(args[0])
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			broke, err := c.ForceUnlock(a.ctx, args[0])
			if err != nil {
				return failed(err)
			}
			if !broke {
				return failure{fmt.Errorf("lock %q is not held: nothing to break", args[0])}
			}
			next := "nobody was waiting"
			if info.Waiting > 0 {
				next = "the next waiting client was woken"
			}
			fmt.Fprintf(a.stdout, "broke lock %s (held by %s, fence %d); %s\n", args[0], clip(info.Token, 12), info.Fence, next)
			return nil
		},
	}
}

// plural is "1 client", "2 clients".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
