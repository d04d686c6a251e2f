package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

// poolRow is one pool's counts, in a table or a JSON line.
type poolRow struct {
	Pool        string `json:"pool"`
	At          int64  `json:"at"` // server time, ms since the epoch
	Total       int    `json:"total"`
	Ready       int    `json:"ready"`
	Cooling     int    `json:"cooling"`
	Expired     int64  `json:"expired"`
	NextReadyAt int64  `json:"next_ready_at"` // ms since the epoch; 0 when empty

	at, next time.Time
}

func rowOf(name string, s xsync.PoolStats) poolRow {
	return poolRow{Pool: name, At: ms(s.At), Total: s.Total, Ready: s.Ready, Cooling: s.Total - s.Ready,
		Expired: s.Expired, NextReadyAt: ms(s.NextReadyAt), at: s.At, next: s.NextReadyAt}
}

var poolHeader = []string{"POOL", "TOTAL", "READY", "COOLING", "EXPIRED", "NEXT READY"}

func (r poolRow) cells() []string {
	next := "-"
	if !r.next.IsZero() {
		next = until(r.next, r.at, "now")
	}
	return []string{r.Pool, fmt.Sprint(r.Total), fmt.Sprint(r.Ready), fmt.Sprint(r.Cooling), fmt.Sprint(r.Expired), next}
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
				t.row(clip(c.ID, 24), until(c.NextAvailable, s.At, "ready"), durOrDash(c.Interval), expires,
					fmt.Sprint(c.UsageCount), orDash(clip(c.Data, 16)))
			}
			if err := t.flush(); err != nil {
				return failed(err)
			}
			fmt.Fprintf(a.stderr, "%d containers, %d ready\n", len(cs), countReady(cs, s.At))
			return nil
		},
	}
}

func countReady(cs []xsync.Container, now time.Time) int {
	n := 0
	for _, c := range cs {
		if !c.NextAvailable.After(now) {
			n++
		}
	}
	return n
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
	widths := []int{nameWidth, 7, 7, 8, 8, 0}
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

// importChunk is how many containers one Put of an import writes.
const importChunk = 500

func (a *app) poolImport() *cobra.Command {
	var partial bool
	cmd := &cobra.Command{
		Use:   "import NAME [FILE]",
		Short: "Put the containers of JSON lines (the seed's LimitedModel) into a pool",
		Long: "import reads one container per line, as `pool export` and the Python package\n" +
			"write them, from FILE or stdin. It reports every line it rejects and why, and\n" +
			"then writes nothing, unless --partial: then it writes the good lines (and exits 1\n" +
			"all the same). A container whose next_time_available is still to come is\n" +
			"cooled down until then; usage_count is the pool's to keep and is not imported.",
		Args: positional("NAME", "[FILE]"),
		RunE: func(_ *cobra.Command, args []string) error {
			in := a.stdin
			src := "stdin"
			if len(args) == 2 && args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return failed(err)
				}
				defer f.Close()
				in, src = f, args[1]
			}
			good, rejects, err := readContainers(in)
			if err != nil {
				return failed(fmt.Errorf("read %s: %w", src, err))
			}
			for _, r := range rejects {
				fmt.Fprintf(a.stderr, "%s:%s\n", src, r)
			}
			if len(rejects) > 0 && !partial {
				return failure{fmt.Errorf("%s: %d of %d lines rejected; nothing imported (--partial imports the others)",
					src, len(rejects), len(rejects)+len(good))}
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			p := c.Pool(args[0])
			if err := importInto(a, p, good); err != nil {
				return failed(err)
			}
			fmt.Fprintf(a.stdout, "imported %d containers into pool %s\n", len(good), p.Name())
			if len(rejects) > 0 {
				return failure{fmt.Errorf("%s: %d lines rejected", src, len(rejects))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&partial, "partial", false, "import the good lines even when some are rejected")
	return cmd
}

// readContainers reads JSON lines; a rejected line is reported as
// "N: why". Blank lines are skipped.
func readContainers(r io.Reader) (good []xsync.Container, rejects []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8*xsync.MaxPayload) // a payload escaped in JSON
	firstLine := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c xsync.Container
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			rejects = append(rejects, fmt.Sprintf("%d: %s", n, strings.TrimPrefix(err.Error(), "xsync: ")))
			continue
		}
		if err := c.Validate(); err != nil {
			rejects = append(rejects, fmt.Sprintf("%d: %s", n, strings.TrimPrefix(err.Error(), "xsync: ")))
			continue
		}
		if m, dup := firstLine[c.ID]; dup {
			rejects = append(rejects, fmt.Sprintf("%d: id %q is on line %d already", n, c.ID, m))
			continue
		}
		firstLine[c.ID] = n
		good = append(good, c)
	}
	return good, rejects, sc.Err()
}

// importInto puts cs into p in chunks, then cools down those whose
// next_time_available is still to come, on the server's clock.
func importInto(a *app, p *xsync.Pool, cs []xsync.Container) error {
	for i := 0; i < len(cs); i += importChunk {
		if err := p.Put(a.ctx, cs[i:min(i+importChunk, len(cs))]...); err != nil {
			return fmt.Errorf("after %d of %d containers: %w", i, len(cs), err)
		}
	}
	s, err := p.Stats(a.ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.NextAvailable.After(s.At) {
			if err := p.Cooldown(a.ctx, c.ID, c.NextAvailable.Sub(s.At)); err != nil && !errors.Is(err, xsync.ErrNotFound) {
				return err
			}
		}
	}
	return nil
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
