package main

// Progress and summary. On a terminal the progress is one line, rewritten
// in place four times a second; into a pipe or a file it is a plain line
// every second.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redisxsync/xsync"
)

// progress prints the progress line.
type progress struct {
	w        io.Writer
	tty      bool
	accounts int
	lastSec  int // the whole second of the last plain line
	printed  bool
}

func newProgress(w io.Writer, cfg config) *progress {
	return &progress{w: w, tty: isTerminal(w), accounts: cfg.Accounts}
}

// isTerminal reports whether w is a character device (a terminal), without
// a dependency: os.File.Stat's mode says so.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update shows the state of the crawl after elapsed; pool.Total is -1 when
// the pool's counters are unknown.
func (p *progress) update(elapsed time.Duration, st siteStats, pool xsync.PoolStats, waiting int64) {
	if sec := int(elapsed / time.Second); !p.tty {
		if p.printed && sec == p.lastSec {
			return
		}
		p.lastSec = sec
	}
	p.printed = true
	rate := 0.0
	if elapsed > 0 {
		rate = float64(st.Served) / elapsed.Seconds()
	}
	readyText := "?"
	if pool.Total >= 0 {
		readyText = fmt.Sprintf("%d/%d", pool.Ready, pool.Total)
		if pool.Retired > 0 {
			readyText += fmt.Sprintf(" (%d retired)", pool.Retired)
		}
	}
	line := fmt.Sprintf("%5.1fs  pages %5d  %6.1f pages/s  accounts ready %-7s  waiters %4d  429s %d  bans %d  logins %d",
		elapsed.Seconds(), st.Served, rate, readyText, waiting, st.TooMany, st.Bans, st.Relogins)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// done ends the progress line on a terminal.
func (p *progress) done() {
	if p.tty && p.printed {
		fmt.Fprintln(p.w)
	}
}

// printSummary prints the summary for people.
func printSummary(w io.Writer, s *summary) {
	fmt.Fprintf(w, "\ncrawl stopped: %s\n", s.Stop)
	fmt.Fprintf(w, "  mode         %s: %d processes x %d workers, %d accounts\n", modeText(s.Mode), s.Procs, s.Workers, s.Accounts)
	twice := "none twice"
	if s.FetchedTwice > 0 {
		twice = fmt.Sprintf("%d fetched twice", s.FetchedTwice)
	}
	fmt.Fprintf(w, "  pages        %d fetched in %.1fs, %s (the site has %d)\n", s.Pages, s.Elapsed, twice, s.SitePages)
	bound := "the sum over the accounts of 1/interval, while neither banned nor dead"
	if s.HostRate > 0 && s.HostRate == s.MaxRate {
		bound = "the site's per-host limit"
	}
	fmt.Fprintf(w, "  rate         %.1f pages/s = %.1f%% of the site's maximum, %.1f pages/s (%s)",
		s.Rate, 100*s.RateRatio, s.MaxRate, bound)
	if s.RateRatio > 1 {
		fmt.Fprint(w, ": a short run, and every account starts ready")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  429s         %d for an account or a host used too soon (the bans' apart)", s.TooMany)
	if s.TooManyLate > 0 {
		fmt.Fprintf(w, " (%d with the pool's grants an interval apart: requests delayed on the way)", s.TooManyLate)
	}
	if s.HostRate > 0 {
		fmt.Fprintf(w, "; %d from the per-host limit of %g pages/s, kept by an xsync Limiter (%d turns passed with no account ready)",
			s.TooManyHost, s.HostRate, s.HostMissed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  logins       %d for %d expired cookies", s.Relogins, s.Expiries-s.Unrenewed)
	if s.Expiries > s.Unrenewed {
		fmt.Fprintf(w, " (%.2f per expiry)", s.LoginsPerExpiry)
	}
	if s.Unrenewed > 0 {
		fmt.Fprintf(w, ", %d more expired as the crawl stopped", s.Unrenewed)
	}
	fmt.Fprintf(w, "; %d %s a worker waited on another's login and reused its cookie\n", s.ReusedCookie, plural(s.ReusedCookie, "time", "times"))
	if s.Mode == "naive" {
		fmt.Fprintf(w, "  bans         %d, which refused %d requests; %d logins of dead accounts refused (no pool health)\n", s.Bans, s.Banned, s.Refused)
	} else {
		fmt.Fprintf(w, "  bans         %d, which refused %d requests (429): absorbed, the pool backed each account off (%d outcomes reported)\n",
			s.Bans, s.Banned, s.Reports)
		fmt.Fprintf(w, "  dead         %s: %d logins refused; retired by the pool: %s\n", list(s.Dead), s.Refused, list(s.Retired))
	}
	if s.Mode == "naive" {
		fmt.Fprintf(w, "  spacing      closest request to its account's previous use: interval %+.1fms (no pool limits; the site tolerates %gms early)\n",
			s.MinSlackMS, s.ToleranceMS)
	} else {
		fmt.Fprintf(w, "  spacing      closest request to its account's previous use: interval %+.1fms (the pool adds %gms, the site tolerates %gms early)\n",
			s.MinSlackMS, s.MarginMS, s.ToleranceMS)
	}
	if s.WorkerErrors > 0 {
		fmt.Fprintf(w, "  errors       %d failed requests (see above)\n", s.WorkerErrors)
	}
	if s.OK {
		if s.Mode == "naive" && s.TooMany > 0 {
			fmt.Fprintf(w, "naive mode: %d requests were refused with 429; the pool (run without -naive) makes that zero\n", s.TooMany)
		} else {
			fmt.Fprintln(w, "OK: no 429 (accounts nor host), no page fetched twice, one login per expired cookie, bans absorbed, no live account retired")
		}
		return
	}
	fmt.Fprintln(w, "FAILED:")
	for _, v := range s.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

func modeText(mode string) string {
	if mode == "naive" {
		return "naive (random accounts, no limits)"
	}
	return "xsync pool (WaitAskOne)"
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
