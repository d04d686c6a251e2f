package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

// poolRow is one pool's counts, in a table or a JSON line. Cooling
// counts the live containers that are neither ready nor retired; Waiting,
// the requests waiting on every client (PoolStats.WaitingAll).
type poolRow struct {
	Pool        string `json:"pool"`
	At          int64  `json:"at"` // server time, ms since the epoch
	Total       int    `json:"total"`
	Ready       int    `json:"ready"`
	Cooling     int    `json:"cooling"`
	Retired     int    `json:"retired"`
	Waiting     int    `json:"waiting"`
	Expired     int64  `json:"expired"`
	NextReadyAt int64  `json:"next_ready_at"` // ms since the epoch; 0 when empty

	at, next time.Time
}

func rowOf(name string, s xsync.PoolStats) poolRow {
	return poolRow{Pool: name, At: ms(s.At), Total: s.Total, Ready: s.Ready, Cooling: max(s.Total-s.Ready-s.Retired, 0),
		Retired: s.Retired, Waiting: s.WaitingAll, Expired: s.Expired, NextReadyAt: ms(s.NextReadyAt), at: s.At, next: s.NextReadyAt}
}

var poolHeader = []string{"POOL", "TOTAL", "READY", "COOLING", "RETIRED", "WAITING", "EXPIRED", "NEXT READY"}

func (r poolRow) cells() []string {
	return []string{r.Pool, fmt.Sprint(r.Total), fmt.Sprint(r.Ready), fmt.Sprint(r.Cooling), fmt.Sprint(r.Retired),
		fmt.Sprint(r.Waiting), fmt.Sprint(r.Expired), r.nextReady()}
}

// topHeader and topCells are poolHeader and cells without EXPIRED, so that
// top fits 80 columns.
var topHeader = []string{"POOL", "TOTAL", "READY", "COOLING", "RETIRED", "WAITING", "NEXT READY"}

func (r poolRow) topCells() []string {
	return []string{r.Pool, fmt.Sprint(r.Total), fmt.Sprint(r.Ready), fmt.Sprint(r.Cooling), fmt.Sprint(r.Retired),
		fmt.Sprint(r.Waiting), r.nextReady()}
}

func (r poolRow) nextReady() string {
	if r.next.IsZero() {
		return "-"
	}
	return until(r.next, r.at, "now")
}

func (a *app) poolsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pools",
		Short: "List the pools, with their counts",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			names, err := c.Pools(a.ctx)
			if err != nil {
				return failed(err)
			}
			var t *table
			if !a.json {
				if len(names) == 0 {
					fmt.Fprintf(a.stderr, "no pools under prefix %q (db %d)\n", a.prefix, a.dbOf())
					return nil
				}
				t = newTable(a.stdout, poolHeader...)
			}
			for _, name := range names {
				s, err := c.Pool(name).Stats(a.ctx)
				if err != nil {
					return failed(err)
				}
				if a.json {
					if err := jsonLine(a.stdout, rowOf(name, s)); err != nil {
						return failed(err)
					}
				} else {
					t.row(rowOf(name, s).cells()...)
				}
			}
			if t != nil {
				return failed(t.flush())
			}
			return nil
		},
	}
}

func (a *app) poolCommand() *cobra.Command {
	pool := &cobra.Command{
		Use:   "pool",
		Short: "Inspect and change one pool of containers",
		Args:  cobra.ArbitraryArgs,
		RunE:  needVerb,
	}
	pool.AddCommand(a.poolLs(), a.poolStats(), a.poolPut(), a.poolImport(), a.poolExport(), a.poolCooldown(), a.poolRm())
	return pool
}

func (a *app) poolLs() *cobra.Command {
	return &cobra.Command{
		Use:   "ls NAME",
		Short: "List a pool's containers",
		Args:  positional("NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := a.pool(args[0])
			if err != nil {
				return err
			}
			s, err := p.Stats(a.ctx) // the server's time
			if err != nil {
				return failed(err)
			}
			cs, err := p.List(a.ctx)
			if err != nil {
				return failed(err)
			}
			if a.json {
				for _, c := range cs {
					if err := jsonLine(a.stdout, c); err != nil {
						return failed(err)
					}
				}
				return nil
			}
			t := newTable(a.stdout, "ID", "NEXT", "INTERVAL", "EXPIRES", "USES", "DATA")
			for _, c := range cs {
				expires := "never"
				if c.TTL > 0 {
					expires = until(c.CreatedAt.Add(c.TTL), s.At, "expired")
				}
				next := until(c.NextAvailable, s.At, "ready")
				if c.Retired {
					next = "retired" // never handed out, whatever its time
				}
				t.row(clip(c.ID, 24), next, durOrDash(c.Interval), expires,
					fmt.Sprint(c.UsageCount), orDash(clip(c.Data, 16)))
			}
			if err := t.flush(); err != nil {
				return failed(err)
			}
			ready, retired := countReady(cs, s.At)
			fmt.Fprintf(a.stderr, "%d containers, %d ready, %d retired\n", len(cs), ready, retired)
			return nil
		},
	}
}

// countReady counts the containers that may be taken at now, and the
// retired ones, which never may.
func countReady(cs []xsync.Container, now time.Time) (ready, retired int) {
	for _, c := range cs {
		switch {
		case c.Retired:
			retired++
		case !c.NextAvailable.After(now):
			ready++
		}
	}
	return ready, retired
}

func (a *app) poolStats() *cobra.Command {
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "stats NAME [--watch DUR]",
		Short: "Show a pool's counts, once or every DUR until interrupted",
		Args:  positional("NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if watch < 0 {
				return usagef("--watch %v: want a positive duration", watch)
			}
			p, err := a.pool(args[0])
			if err != nil {
				return err
			}
			var tick <-chan time.Time
			if watch > 0 {
				ticker := time.NewTicker(watch)
				defer ticker.Stop()
				tick = ticker.C
			}
			for first := true; ; first = false {
				s, err := p.Stats(a.ctx)
				if err != nil {
					if a.ctx.Err() != nil {
						return nil // interrupted: the watch is over
					}
					return failed(err)
				}
				if a.json {
					if err := jsonLine(a.stdout, rowOf(p.Name(), s)); err != nil {
						return failed(err)
					}
				} else {
					width := max(len(p.Name()), len(poolHeader[0]))
					if first {
						if err := fixedRow(a.stdout, width, poolHeader); err != nil {
							return failed(err)
						}
					}
					if err := fixedRow(a.stdout, width, rowOf(p.Name(), s).cells()); err != nil {
						return failed(err)
					}
				}
				if tick == nil {
					return nil
				}
				select {
				case <-tick:
				case <-a.ctx.Done():
					return nil
				}
			}
		},
	}
	cmd.Flags().DurationVar(&watch, "watch", 0, "print the counts again every DUR (e.g. 1s) until interrupted")
	return cmd
}

// fixedRow writes cells in columns of fixed widths, so that the lines of
// a watch, printed one at a time, line up.
func fixedRow(w io.Writer, nameWidth int, cells []string) error {
	widths := []int{nameWidth, 7, 7, 8, 8, 8, 8, 0}
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		if widths[i] > 0 {
			fmt.Fprintf(&b, "%-*s", widths[i], c)
		} else {
			b.WriteString(c)
		}
	}
	_, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	return err
}
func (a *app) poolExport() *cobra.Command {
	return &cobra.Command{
		Use:   "export NAME",
		Short: "Print a pool's containers as JSON lines (what import reads)",
		Args:  positional("NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := a.pool(args[0])
			if err != nil {
				return err
			}
			cs, err := p.List(a.ctx)
			if err != nil {
				return failed(err)
			}
			w := bufio.NewWriter(a.stdout)
			for _, c := range cs {
				if err := jsonLine(w, c); err != nil {
					return failed(err)
				}
			}
			return failed(w.Flush())
		},
	}
}
