package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/redisxsync/xsync"
)

// ANSI sequences of top's screen.
const (
	altScreenOn  = "\x1b[?1049h\x1b[?25l" // the alternate screen, cursor hidden
	altScreenOff = "\x1b[?25h\x1b[?1049l"
	home         = "\x1b[H\x1b[2J" // cursor home, screen cleared
)

func (a *app) topCommand() *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "A live view of pools and locks, refreshed every second (q quits)",
		Long: "top shows the pools (total, ready, cooling, retired, requests waiting on\n" +
			"every client, when the next is ready)\n" +
			"and the locks held (holder, TTL, fence, clients waiting), refreshed every\n" +
			"second, fitted to the terminal (80 columns will do). q or Ctrl-C quits.\n" +
			"--once prints one screen and exits, for scripts and for `watch`.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			if once {
				frame, err := a.topFrame(c, 80, 0)
				if err != nil {
					return failed(err)
				}
				_, err = io.WriteString(a.stdout, frame)
				return failed(err)
			}
			return failed(a.topLoop(c))
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "print one screen and exit")
	return cmd
}

// topLoop redraws the screen every second until q, Ctrl-C or the end of
// the run's context. On a terminal it reads keys in raw mode; otherwise a
// line "q" quits.
func (a *app) topLoop(c *xsync.Client) error {
	width, height := 80, 24
	out, eol := a.stdout, "\n"
	if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// A terminal that does not know its size says 0x0.
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w >= 40 && h >= 10 {
			width, height = w, h
		}
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		old, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return err
		}
		defer func() { _ = term.Restore(int(f.Fd()), old) }()
		eol = "\r\n" // raw mode: no newline translation
		fmt.Fprint(out, altScreenOn)
		defer fmt.Fprint(out, altScreenOff)
	}
	keys := make(chan byte, 1)
	// The reader ends with stdin, or with the process: a read cannot be
	// interrupted, and top is the last thing the process does.
	go func() {
		r := bufio.NewReader(a.stdin)
		for {
			b, err := r.ReadByte()
			if err != nil {
				close(keys)
				return
			}
			select {
			case keys <- b:
			default:
			}
		}
	}()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		frame, err := a.topFrame(c, width, height)
		if err != nil {
			frame = oneLine(err) + "\n"
		}
		fmt.Fprint(out, home+strings.ReplaceAll(frame, "\n", eol))
		select {
		case <-a.ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok || k == 'q' || k == 'Q' || k == 3 /* Ctrl-C */ || k == 4 /* Ctrl-D */ {
				return nil
			}
		case <-ticker.C:
		}
	}
}

// topFrame renders one screen: a title, the pools, the locks, each line
// cut to width; height > 0 bounds the lines (the rest is counted).
func (a *app) topFrame(c *xsync.Client, width, height int) (string, error) {
	names, err := c.Pools(a.ctx)
	if err != nil {
		return "", err
	}
	locks, err := c.Locks(a.ctx)
	if err != nil {
		return "", err
	}
	var pools []poolRow
	var at time.Time
	for _, name := range names {
		s, err := c.Pool(name).Stats(a.ctx)
		if err != nil {
			return "", err
		}
		pools = append(pools, rowOf(name, s))
		at = s.At
	}
	if at.IsZero() {
		at = time.Now()
	}

	poolRows, lockRows := len(pools), len(locks)
	if height > 0 {
		// title, blank, pool header, blank, lock header, and a line of
		// "… more" under each table.
		room := max(height-7, 2)
		poolRows = min(poolRows, max(room/2, room-lockRows))
		lockRows = min(lockRows, room-poolRows)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "xsync top  %s db %d  prefix %q  %s  (q quits)\n\n",
		a.serverName(), a.dbOf(), a.prefix, at.Local().Format("15:04:05"))
	if len(pools) == 0 {
		b.WriteString("no pools\n")
	} else {
		t := newTable(&b, topHeader...)
		for _, r := range pools[:poolRows] {
			r.Pool = clip(r.Pool, 24)
			t.row(r.topCells()...)
		}
		_ = t.flush()
		if n := len(pools) - poolRows; n > 0 {
			fmt.Fprintf(&b, "… %d more pools\n", n)
		}
	}
	b.WriteString("\n")
	if len(locks) == 0 {
		b.WriteString("no locks held\n")
	} else {
		t := newTable(&b, lockHeader...)
		for _, l := range locks[:lockRows] {
			t.row(lockRowOf(l).cells()...)
		}
		_ = t.flush()
		if n := len(locks) - lockRows; n > 0 {
			fmt.Fprintf(&b, "… %d more locks\n", n)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		if utf8.RuneCountInString(l) > width {
			lines[i] = string([]rune(l)[:width])
		}
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// serverName is host:port of the server, never its credentials.
func (a *app) serverName() string {
	raw := a.url
	if raw == "" {
		raw = a.getenv("XSYNC_URL")
	}
	if raw == "" {
		raw = defaultURL
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "redis"
}
