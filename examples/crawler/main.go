// Command crawler is the showcase of xsync: a crawl by several processes
// that share one Redis, a pool of rate-limited accounts and a lock per
// account, against a local site that punishes every rule broken.
//
// Run it with a private Redis (the Makefile installs and starts one):
//
//	make demo
//
// or against a Redis of your own:
//
//	go run ./examples/crawler -redis redis://127.0.0.1:6379/0
//
// The program starts a site (site.go) whose accounts may fetch one page per
// interval each, and whose login cookies expire. It loads the accounts into
// an xsync pool, starts -procs worker processes (worker.go) of -workers
// goroutines each, and shows the progress (progress.go). Each worker takes
// an account with Pool.WaitAskOne, fetches a page, and queues the links no
// process has queued yet (a Redis set); an expired cookie is renewed under
// Client.WithLock on the account, by one worker only. Some accounts get
// banned for a while (-banned), and some die for good (-dead): the workers
// report every outcome to the pool (Pool.Report), which backs a banned
// account off and retires a dead one. At the end it prints a summary and
// exits with status 1 if a rule was broken: a 429 for an account or a host
// used too soon (the site limits each account, and each host: the workers
// keep the host's limit with an xsync Limiter shared by every process), a
// page fetched twice, more than one login per expired cookie, or a live
// account retired. -naive runs the same crawl with random accounts
// (Pool.AcquireRandomOne) to show the 429s that the pool prevents; its
// status ignores them.
//
// The pool spaces the uses of an account by its interval on Redis's clock;
// the site measures the arrival of the requests on its own. Between the two
// lie the pool actor's answer, a goroutine wake-up and an HTTP request over
// loopback: about 2ms, under 10ms on an idle machine, tens of ms on one
// busy compiling. So the pool is given the site's interval plus -margin
// (30ms), and the site, like real ones, tolerates requests up to
// -tolerance (5ms) early. The summary's spacing line shows how close the
// crawl came, and blames any 429 on the pool (grants closer than the
// interval) or on a delayed request. Its rate is measured against the
// site's own intervals, so the margin is paid for in the figure.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	if spec := os.Getenv(workerEnv); spec != "" {
		// A worker process. Ctrl-C reaches the whole process group: the
		// coordinator stops us by closing our stdin, after which we report.
		signal.Ignore(os.Interrupt)
		os.Exit(runWorker(spec, os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the command line and runs the crawl; it returns the exit
// status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	return crawl(ctx, cfg, stdout, stderr)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("crawler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Accounts, "accounts", 20, "accounts in the pool")
	fs.IntVar(&cfg.Workers, "workers", 64, "worker goroutines per process")
	fs.IntVar(&cfg.Procs, "procs", 3, "worker processes")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "stop after this long (0: no limit; with no limit at all the crawl ends with the site)")
	fs.IntVar(&cfg.PageLimit, "pages", 0, "stop after this many pages (0: no limit)")
	fs.StringVar(&cfg.Redis, "redis", os.Getenv("REDIS_URL"), "Redis URL, redis://host:port/db (default $REDIS_URL)")
	var addrs string
	fs.StringVar(&addrs, "addrs", "", "instead of -redis: a Redis Cluster's nodes, or with -master-name the Sentinels, as host:port,host:port")
	fs.StringVar(&cfg.MasterName, "master-name", "", "with -addrs: the Sentinels' name of the master")
	fs.BoolVar(&cfg.Naive, "naive", false, "take random accounts, without the pool's limits, to see the 429s")
	fs.BoolVar(&cfg.JSON, "json", false, "print the summary as JSON (the progress goes to stderr)")
	fs.IntVar(&cfg.SitePages, "site-pages", 3000, "pages of the site")
	fs.DurationVar(&cfg.MinInterval, "min-interval", 200*time.Millisecond, "shortest account interval")
	fs.DurationVar(&cfg.MaxInterval, "max-interval", 2*time.Second, "longest account interval")
	fs.DurationVar(&cfg.CookieTTL, "cookie-ttl", 6*time.Second, "cookie lifetime: each account's is between this and 1.5 times this")
	fs.DurationVar(&cfg.LoginDelay, "login-delay", 300*time.Millisecond, "how long a login takes on the site")
	fs.DurationVar(&cfg.Tolerance, "tolerance", 5*time.Millisecond, "the site lets a request come this much before the account's interval has passed")
	fs.DurationVar(&cfg.Margin, "margin", 30*time.Millisecond, "added to the site's interval in the pool")
	fs.Float64Var(&cfg.HostRate, "host-rate", 20, "the site's per-host limit in pages per second (0: none); the workers keep it with an xsync Limiter")
	fs.IntVar(&cfg.HostBurst, "host-burst", 5, "pages the site lets a host send at once; at least 4, which the workers need to absorb their delays")
	fs.DurationVar(&cfg.HostMargin, "host-margin", 2*time.Millisecond, "added to the time between two pages per host in the workers' limiter")
	fs.IntVar(&cfg.CrawlDB, "db", 1, "Redis DB of the frontier and the seen set")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the site's links and cookie lifetimes")
	fs.StringVar(&cfg.Metrics, "metrics", "", "serve xsync's metrics of every process at http://ADDR/metrics (Prometheus), e.g. :9090")
	fs.IntVar(&cfg.Banned, "banned", 2, "accounts that get banned now and then (the first ones)")
	fs.IntVar(&cfg.BanEvery, "ban-every", 8, "a banned account is banned after every this many pages")
	fs.DurationVar(&cfg.BanFor, "ban-for", 500*time.Millisecond, "how long a ban lasts")
	fs.IntVar(&cfg.Dead, "dead", 1, "accounts that die for good (the ones after the banned ones)")
	fs.IntVar(&cfg.DeadAfter, "dead-after", 3, "a dying account is disabled after this many pages")
	fs.DurationVar(&cfg.Backoff, "backoff", 300*time.Millisecond, "the pool's cooldown after a first 429 in a row; it doubles at each next one")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", 5*time.Second, "the longest cooldown after a 429")
	fs.IntVar(&cfg.RetireAfter, "retire-after", 3, "failures in a row (refused logins, 429s) that retire an account")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var problems []string
	dbSet := false
	fs.Visit(func(f *flag.Flag) { dbSet = dbSet || f.Name == "db" })
	if addrs != "" {
		cfg.Addrs = strings.Split(addrs, ",")
		cfg.Redis = "" // -addrs wins over $REDIS_URL
		if cfg.MasterName == "" && !dbSet {
			cfg.CrawlDB = 0 // a Cluster has DB 0 only
		}
	} else if cfg.MasterName != "" {
		problems = append(problems, "-master-name needs -addrs (the Sentinels)")
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if cfg.Redis == "" && len(cfg.Addrs) == 0 {
		problems = append(problems, "no Redis: give -redis redis://host:port/db, set REDIS_URL, or give -addrs (make demo starts a private one)")
	}
	if cfg.Accounts < 1 || cfg.Workers < 1 || cfg.Procs < 1 {
		problems = append(problems, "-accounts, -workers and -procs must be at least 1")
	}
	if cfg.SitePages < 1 {
		problems = append(problems, "-site-pages must be at least 1")
	}
	if cfg.MinInterval < time.Millisecond || cfg.MaxInterval < cfg.MinInterval {
		problems = append(problems, "need 1ms <= -min-interval <= -max-interval")
	}
	if cfg.CookieTTL < time.Millisecond {
		problems = append(problems, "-cookie-ttl must be at least 1ms")
	}
	if cfg.HostRate < 0 || (cfg.HostRate > 0 && cfg.HostBurst < 4) || cfg.HostMargin < 0 {
		problems = append(problems, "-host-rate may not be negative, -host-burst must be at least 4, -host-margin not negative")
	}
	if cfg.Duration < 0 || cfg.PageLimit < 0 || cfg.LoginDelay < 0 || cfg.Tolerance < 0 || cfg.Margin < 0 || cfg.CrawlDB < 0 ||
		cfg.BanFor < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 || cfg.RetireAfter < 0 {
		problems = append(problems, "durations, -pages, -db and -retire-after may not be negative")
	}
	if cfg.Banned < 0 || cfg.Dead < 0 || cfg.Banned+cfg.Dead > cfg.Accounts {
		problems = append(problems, "-banned and -dead may not be negative, nor add up to more than -accounts")
	}
	if cfg.BanEvery < 1 || cfg.DeadAfter < 1 {
		problems = append(problems, "-ban-every and -dead-after must be at least 1")
	}
	if cfg.MaxBackoff > 0 && cfg.MaxBackoff < cfg.Backoff {
		problems = append(problems, "-max-backoff may not be shorter than -backoff")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "crawler: %s\n", p)
		}
		return cfg, fmt.Errorf("bad flags")
	}
	return cfg, nil
}
