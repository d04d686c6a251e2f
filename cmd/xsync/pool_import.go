package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

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
