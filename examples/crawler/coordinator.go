package main

// The coordinator: the process the user starts. It plays the site and the
// producer of accounts, starts the worker processes, shows the progress and
// judges the crawl:
//
//  1. start the site on 127.0.0.1 (a free port);
//  2. log every account in and Put it into the pool, with the site's
//     interval (plus a small margin) and the cookie in its Data;
//  3. queue the first page;
//  4. start P worker processes (this program again, with the workerSpec in
//     the environment), wait until each is connected, tell them "go";
//  5. show the progress until the time or page limit, the end of the site,
//     or Ctrl-C; then close the workers' stdin, which stops them;
//  6. add up what the site saw and what the workers counted, print the
//     summary, delete the crawl's keys.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
)

// config is the command line.
type config struct {
	Accounts    int
	Workers     int
	Procs       int
	Duration    time.Duration
	PageLimit   int
	Redis       string   // redis:// URL of one server, or
	Addrs       []string // a Cluster's nodes, or the Sentinels with MasterName
	MasterName  string
	Naive       bool
	JSON        bool
	SitePages   int
	MinInterval time.Duration
	MaxInterval time.Duration
	CookieTTL   time.Duration
	LoginDelay  time.Duration
	Tolerance   time.Duration
	Margin      time.Duration
	HostRate    float64
	HostBurst   int
	HostMargin  time.Duration
	CrawlDB     int
	Seed        uint64
	Metrics     string        // -metrics: the address of /metrics; "" for none
	Banned      int           // accounts banned now and then
	BanEvery    int           // pages between two bans
	BanFor      time.Duration // length of a ban
	Dead        int           // accounts that die
	DeadAfter   int           // pages before they do
	Backoff     time.Duration // the pool's HealthPolicy
	MaxBackoff  time.Duration
	RetireAfter int
}

// health is the pool's health policy.
func (cfg config) health() xsync.PoolOption {
	return xsync.Health(xsync.HealthPolicy{Backoff: cfg.Backoff, MaxBackoff: cfg.MaxBackoff, RetireAfter: cfg.RetireAfter})
}

// summary is the outcome of a crawl; -json prints it as is.
type summary struct {
	Mode      string  `json:"mode"` // "pool" or "naive"
	Stop      string  `json:"stop"` // why the crawl stopped
	Accounts  int     `json:"accounts"`
	Procs     int     `json:"procs"`
	Workers   int     `json:"workers"` // per process
	SitePages int     `json:"site_pages"`
	Pages     int     `json:"pages"`   // pages fetched, as the site counts them
	Elapsed   float64 `json:"elapsed"` // seconds from "go" to the stop
	// Rate is the pages fetched until the stop per second of Elapsed;
	// MaxRate the site's limit: the sum over the accounts of 1/interval,
	// each for the time it was neither banned nor dead, or the host limit,
	// whichever is lower.
	Rate         float64  `json:"rate"`
	MaxRate      float64  `json:"max_rate"`
	RateRatio    float64  `json:"rate_ratio"`
	FetchedTwice int      `json:"fetched_twice"` // pages the site served more than once
	TooMany      int      `json:"too_many"`      // 429 answers for an account or a host used too soon
	TooManyLate  int      `json:"too_many_late"` // of which the pool's grants were far enough apart: delayed requests
	TooManyHost  int      `json:"too_many_host"` // of which the site's per-host limit refused
	HostRate     float64  `json:"host_rate"`     // the site's per-host limit, pages/s; 0: none
	HostMissed   int64    `json:"host_missed"`   // host turns that passed while no account was ready
	Bans         int      `json:"bans"`          // bans the site imposed
	Banned       int      `json:"banned"`        // 429 answers to banned accounts (not in TooMany): the bans the pool absorbed
	Dead         []string `json:"dead"`          // accounts the site disabled for good
	Refused      int      `json:"refused"`       // logins of those accounts the site refused
	Retired      []string `json:"retired"`       // accounts the pool retired
	Reports      int64    `json:"reports"`       // outcomes reported to the pool
	Expiries     int      `json:"expiries"`      // cookies found expired
	Unrenewed    int      `json:"unrenewed"`     // of which not renewed when the crawl stopped
	Relogins     int      `json:"relogins"`      // logins after the first of each account
	// LoginsPerExpiry is Relogins per renewed expired cookie: 1 when each
	// expired cookie cost exactly one login.
	LoginsPerExpiry float64  `json:"logins_per_expiry"`
	NeedlessLogins  int      `json:"needless_logins"` // logins while the latest cookie was still valid
	ReusedCookie    int64    `json:"reused_cookie"`   // workers that waited on a login lock and reused the new cookie
	Takes           int64    `json:"takes"`           // accounts handed out by the pool
	WorkerErrors    int64    `json:"worker_errors"`   // failed requests other than 401/429
	MinSlackMS      float64  `json:"min_slack_ms"`    // closest request to the previous use of its account, minus the interval
	ToleranceMS     float64  `json:"tolerance_ms"`    // the site refuses a use sooner than interval - tolerance
	MarginMS        float64  `json:"margin_ms"`       // the pool's interval is the site's plus this
	Violations      []string `json:"violations"`      // rules broken
	OK              bool     `json:"ok"`
}

// coordinator runs one crawl.
type coordinator struct {
	cfg    config
	out    io.Writer // summary (and progress, unless -json)
	errw   io.Writer // worker stderr, errors
	prog   io.Writer // progress
	run    string    // id of this crawl, in every key
	prefix string    // "crawler:<run>"
	keys   crawlKeys

	site    *site
	siteURL string
	client  *xsync.Client
	pool    *xsync.Pool
	db      redis.UniversalClient // the crawl DB
	metrics *gatherer             // -metrics; nil without
}

// crawl runs the whole crawl and returns the program's exit status: 0 when
// no rule was broken, 1 when one was, 2 when the crawl could not run.
func crawl(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	c := &coordinator{cfg: cfg, out: stdout, errw: stderr, prog: stdout}
	if cfg.JSON {
		c.prog = stderr
	}
	sum, err := c.runCrawl(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "crawler: %v\n", err)
		return 2
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	} else {
		printSummary(stdout, sum)
	}
	if !sum.OK {
		return 1
	}
	return 0
}

func (c *coordinator) runCrawl(ctx context.Context) (*summary, error) {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	c.run = hex.EncodeToString(id)
	c.prefix = "crawler:" + c.run
	c.keys = keysOf(c.prefix)

	// The coordinator's own client: it fills the pool and reads its stats.
	opts := redisOptions(c.cfg.Redis, c.cfg.Addrs, c.cfg.MasterName, c.prefix)
	if c.cfg.Metrics != "" {
		ln, err := listenMetrics(c.cfg.Metrics)
		if err != nil {
			return nil, err
		}
		own, err := newPromMetrics()
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		defer own.shutdown()
		c.metrics = newGatherer(own)
		srv := serveMetrics(ln, c.metrics)
		defer srv.close()
		opts.MeterProvider = own.provider
		fmt.Fprintf(c.errw, "crawler: metrics at http://%s/metrics\n", ln.Addr())
	}
	client, err := xsync.New(opts)
	if err != nil {
		return nil, err
	}
	c.client = client
	c.pool = client.Pool("accounts", c.cfg.health())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.cleanup(ctx)
		_ = client.Close(ctx)
	}()
	if c.db, err = client.DB(c.cfg.CrawlDB); err != nil {
		return nil, err
	}

	// 1. The site.
	c.site = newSite(siteConfig{
		Pages:      c.cfg.SitePages,
		Links:      6,
		Tolerance:  c.cfg.Tolerance,
		LoginDelay: c.cfg.LoginDelay,
		Seed:       c.cfg.Seed,
		Accounts:   c.accounts(),
		HostRate:   c.cfg.HostRate,
		HostBurst:  c.cfg.HostBurst,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: c.site, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		_ = srv.Close()
		<-served
	}()
	c.siteURL = "http://" + ln.Addr().String()

	// 2. The accounts, as a producer would load them.
	if err := c.loadAccounts(ctx); err != nil {
		return nil, err
	}
	// 3. The first page.
	if err := c.db.SAdd(ctx, c.keys.Seen, "/page/0").Err(); err != nil {
		return nil, err
	}
	if err := c.db.RPush(ctx, c.keys.Frontier, "/page/0").Err(); err != nil {
		return nil, err
	}
	// 4-5. The workers.
	return c.runWorkers(ctx)
}

// accounts makes the site's accounts: intervals spread evenly from
// MinInterval to MaxInterval, cookie lifetimes between CookieTTL and 1.5 ×
// CookieTTL; the first -banned accounts (the busiest) get banned now and
// then, the -dead ones after them die.
func (c *coordinator) accounts() []siteAccount {
	rnd := mrand.New(mrand.NewPCG(c.cfg.Seed, 0xacc))
	out := make([]siteAccount, c.cfg.Accounts)
	for k := range out {
		interval := c.cfg.MinInterval
		if c.cfg.Accounts > 1 {
			step := (c.cfg.MaxInterval - c.cfg.MinInterval) / time.Duration(c.cfg.Accounts-1)
			interval += step * time.Duration(k)
		}
		pw := make([]byte, 8)
		_, _ = rand.Read(pw)
		out[k] = siteAccount{
			ID:        fmt.Sprintf("acct-%02d", k+1),
			Password:  hex.EncodeToString(pw),
			Interval:  interval.Round(time.Millisecond),
			CookieTTL: c.cfg.CookieTTL + time.Duration(rnd.Int64N(int64(c.cfg.CookieTTL/2)+1)),
		}
		if k < c.cfg.Banned {
			out[k].BanEvery, out[k].BanFor = c.cfg.BanEvery, c.cfg.BanFor
		}
		if k >= c.cfg.Banned && k < c.cfg.Banned+c.cfg.Dead {
			out[k].DeadAfter = c.cfg.DeadAfter
		}
	}
	return out
}

// loadAccounts logs every account in and puts it into the pool. The pool's
// interval is the site's plus -margin, so that the delay between taking an
// account and the request reaching the site does not make a request early
// (see the package comment).
func (c *coordinator) loadAccounts(ctx context.Context) error {
	hc := newHTTPClient(len(c.site.cfg.Accounts))
	defer hc.CloseIdleConnections()
	containers := make([]xsync.Container, len(c.site.cfg.Accounts))
	errs := make([]error, len(containers))
	var wg sync.WaitGroup
	for i, a := range c.site.cfg.Accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cookie, err := login(ctx, hc, c.siteURL, a.ID, a.Password)
			if err != nil {
				errs[i] = err
				return
			}
			data, _ := json.Marshal(account{User: a.ID, Password: a.Password, Cookie: cookie})
			containers[i] = xsync.Container{
				ID:       a.ID,
				TTL:      time.Hour, // lent to this crawl for an hour
				Interval: a.Interval + c.cfg.Margin,
				Data:     string(data),
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.pool.Put(ctx, containers...)
}

// runWorkers starts the worker processes, runs the crawl until a stop
// condition, stops the workers and judges the crawl.
func (c *coordinator) runWorkers(ctx context.Context) (*summary, error) {
	f, err := c.startWorkers()
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := f.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := f.send("go\n"); err != nil {
		return nil, err
	}

	// Watch the crawl until a stop condition.
	prog := newProgress(c.prog, c.cfg)
	show := func() {
		prog.update(time.Since(start), c.site.snapshot(), c.poolStats(ctx), f.waiting())
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var deadline <-chan time.Time
	if c.cfg.Duration > 0 {
		t := time.NewTimer(c.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	stop := ""
	for stop == "" {
		select {
		case ev := <-f.events:
			if f.handle(ev) {
				stop = f.exitStop(ev, c.cfg.PageLimit)
			}
		case <-deadline:
			stop = "time limit (" + c.cfg.Duration.String() + ")"
		case <-ctx.Done():
			stop = "interrupted"
		case <-tick.C:
			if c.cfg.PageLimit > 0 && c.site.snapshot().Served >= c.cfg.PageLimit {
				stop = "page limit (" + strconv.Itoa(c.cfg.PageLimit) + ")"
			} else if c.siteDone(ctx) {
				stop = "every page of the site fetched"
			}
			show()
		}
	}
	elapsed := time.Since(start)
	pagesAtStop := c.site.snapshot().Served
	show()
	prog.done()

	f.stop(15 * time.Second)
	return c.summarize(ctx, stop, start, elapsed, pagesAtStop, f.children), nil
}

// fleet is the worker processes of a crawl.
type fleet struct {
	children []*child
	events   chan event
	readers  sync.WaitGroup // one per child, reading its stdout
	exited   int
	// onReady, when set, learns where a ready worker process serves its
	// metrics.
	onReady func(proc int, metricsAddr string)
}

// child is one worker process as the coordinator sees it.
type child struct {
	proc    int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	waiting int64       // its goroutines waiting for an account, as last reported
	result  *procResult // its final count
	exited  bool
	err     error // how it exited
}

// event is a message of a child, or its exit (msg == nil).
type event struct {
	child *child
	msg   *message
	err   error
}

// startWorkers starts -procs copies of this program as worker processes.
func (c *coordinator) startWorkers() (*fleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &fleet{events: make(chan event)}
	if c.metrics != nil {
		f.onReady = c.metrics.addWorker
	}
	for i := range c.cfg.Procs {
		spec, _ := json.Marshal(workerSpec{
			Proc:       i + 1,
			Workers:    c.cfg.Workers,
			Redis:      c.cfg.Redis,
			Addrs:      c.cfg.Addrs,
			MasterName: c.cfg.MasterName,
			Prefix:     c.prefix,
			Pool:       "accounts",
			CrawlDB:    c.cfg.CrawlDB,
			Site:       c.siteURL,
			Naive:      c.cfg.Naive,
			PageLimit:  c.cfg.PageLimit,
			HostEvery:  c.hostEvery(),
			// Turns are HostEvery apart, 2 at once, and a page may go up
			// to HostBurst-3 turns late: the site's burst holds them, with
			// one page to spare for the jitter of delivery.
			AccountWait: time.Duration(max(c.cfg.HostBurst-3, 0)) * c.hostEvery(),
			Metrics:     c.cfg.Metrics != "",

			Backoff:     c.cfg.Backoff,
			MaxBackoff:  c.cfg.MaxBackoff,
			RetireAfter: c.cfg.RetireAfter,
		})
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
		cmd.Stderr = c.errw
		if err := f.start(i+1, cmd); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// start starts one worker process and the goroutine that turns its stdout
// into events.
func (f *fleet) start(proc int, cmd *exec.Cmd) error {
	ch := &child{proc: proc, cmd: cmd}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker process: %w", err)
	}
	ch.stdin = stdin
	f.children = append(f.children, ch)
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				f.events <- event{child: ch, msg: &m}
			}
		}
		f.events <- event{child: ch, err: cmd.Wait()}
	}()
	return nil
}

// waitReady waits until every worker process is connected.
func (f *fleet) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for ready := 0; ready < len(f.children); {
		select {
		case ev := <-f.events:
			if f.handle(ev) {
				return fmt.Errorf("worker process %d ended before the start: %v", ev.child.proc, ev.err)
			}
			if ev.msg.Event == "ready" {
				ready++
				if f.onReady != nil && ev.msg.Metrics != "" {
					f.onReady(ev.child.proc, ev.msg.Metrics)
				}
			}
		case <-t.C:
			return fmt.Errorf("worker processes did not start within %v", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// send writes line to every worker process.
func (f *fleet) send(line string) error {
	for _, ch := range f.children {
		if _, err := io.WriteString(ch.stdin, line); err != nil {
			return fmt.Errorf("worker process %d: %w", ch.proc, err)
		}
	}
	return nil
}

// waiting is the number of goroutines waiting for an account, over all
// worker processes.
func (f *fleet) waiting() int64 {
	var n int64
	for _, ch := range f.children {
		n += ch.waiting
	}
	return n
}

// stop closes the stdin of every worker process, which makes it stop and
// report, and collects the reports; a process still running after
// timeout is killed.
func (f *fleet) stop(timeout time.Duration) {
	for _, ch := range f.children {
		_ = ch.stdin.Close()
	}
	kill := time.NewTimer(timeout)
	defer kill.Stop()
	for f.exited < len(f.children) {
		select {
		case ev := <-f.events:
			f.handle(ev)
		case <-kill.C:
			for _, ch := range f.children {
				if !ch.exited {
					_ = ch.cmd.Process.Kill()
				}
			}
		}
	}
}

// close stops every worker process still running (closing its stdin) and
// waits until their readers are gone.
func (f *fleet) close() {
	for _, ch := range f.children {
		_ = ch.stdin.Close()
	}
	go func() { // drain the events until every reader is gone
		for range f.events {
		}
	}()
	f.readers.Wait()
	close(f.events)
}

// handle records an event of a child; it reports whether the child exited.
func (f *fleet) handle(ev event) bool {
	ch := ev.child
	if ev.msg == nil {
		ch.exited, ch.err = true, ev.err
		f.exited++
		return true
	}
	switch ev.msg.Event {
	case "progress":
		ch.waiting = ev.msg.Waiting
	case "result":
		ch.result = ev.msg.Result
		ch.waiting = 0
	}
	return false
}

// exitStop is why the crawl stops when the worker process of ev has
// exited, or "" when it goes on. With a page limit, a worker process ends
// by itself once the crawl has claimed the last page: it fetches what it
// claimed, reports and exits, maybe before the others have fetched theirs.
// The crawl is over when all of them have. Any other exit is early.
func (f *fleet) exitStop(ev event, pageLimit int) string {
	if ch := ev.child; ev.err != nil || ch.result == nil || !ch.result.PageLimit {
		return fmt.Sprintf("worker process %d ended early", ch.proc)
	}
	if f.exited < len(f.children) {
		return ""
	}
	return "page limit (" + strconv.Itoa(pageLimit) + ")"
}

// siteDone reports whether every page queued has been fetched and its
// links queued: then the frontier is empty for good.
func (c *coordinator) siteDone(ctx context.Context) bool {
	var done *redis.StringCmd
	var seen *redis.IntCmd
	_, err := c.db.Pipelined(ctx, func(p redis.Pipeliner) error {
		done = p.Get(ctx, c.keys.Done)
		seen = p.SCard(ctx, c.keys.Seen)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false
	}
	n, _ := done.Int64()
	return n > 0 && n == seen.Val()
}

// poolStats returns the pool's counters; Total -1 when unknown.
func (c *coordinator) poolStats(ctx context.Context) xsync.PoolStats {
	st, err := c.pool.Stats(ctx)
	if err != nil {
		return xsync.PoolStats{Total: -1}
	}
	return st
}

// retired returns the IDs of the accounts the pool retired, sorted.
func (c *coordinator) retired(ctx context.Context) []string {
	var ids []string
	for _, a := range c.site.cfg.Accounts {
		if got, err := c.pool.Get(ctx, a.ID); err == nil && got.Retired {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// hostEvery is the time between two pages that the workers' politeness
// limiter keeps per host: the site's, plus -host-margin against the jitter
// of delivery. 0 when the site has no host limit.
func (c *coordinator) hostEvery() time.Duration {
	if c.cfg.HostRate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second)/c.cfg.HostRate) + c.cfg.HostMargin
}

// summarize judges the crawl.
func (c *coordinator) summarize(ctx context.Context, stop string, start time.Time, elapsed time.Duration, pagesAtStop int, children []*child) *summary {
	st := c.site.snapshot()
	s := &summary{
		Mode:           "pool",
		Stop:           stop,
		Accounts:       c.cfg.Accounts,
		Procs:          c.cfg.Procs,
		Workers:        c.cfg.Workers,
		SitePages:      c.cfg.SitePages,
		Pages:          st.Served,
		Elapsed:        elapsed.Seconds(),
		Rate:           float64(pagesAtStop) / elapsed.Seconds(),
		MaxRate:        c.site.capacity(start, start.Add(elapsed)) / elapsed.Seconds(),
		FetchedTwice:   st.FetchedTwice,
		TooMany:        st.TooMany,
		TooManyLate:    st.TooManyLate,
		TooManyHost:    st.TooManyHost,
		HostRate:       c.cfg.HostRate,
		Bans:           st.Bans,
		Banned:         st.Banned,
		Dead:           c.site.dead(),
		Refused:        st.RefusedLogins,
		Retired:        c.retired(ctx),
		Expiries:       st.Expiries,
		Relogins:       st.Relogins,
		Unrenewed:      st.Unrenewed,
		NeedlessLogins: st.NeedlessLogins,
		MinSlackMS:     float64(st.MinSlack) / float64(time.Millisecond),
		ToleranceMS:    float64(c.cfg.Tolerance) / float64(time.Millisecond),
		MarginMS:       float64(c.cfg.Margin) / float64(time.Millisecond),
	}
	if c.cfg.Naive {
		s.Mode = "naive"
	}
	s.RateRatio = s.Rate / s.MaxRate
	if renewed := st.Expiries - st.Unrenewed; renewed > 0 {
		s.LoginsPerExpiry = float64(st.Relogins) / float64(renewed)
	}
	for _, ch := range children {
		if ch.result != nil {
			s.ReusedCookie += ch.result.ReusedCookie
			s.Takes += ch.result.Takes
			s.Reports += ch.result.Reports
			s.WorkerErrors += ch.result.Errors
			s.HostMissed += ch.result.Missed
		}
		if ch.err != nil || ch.result == nil {
			s.Violations = append(s.Violations, fmt.Sprintf("worker process %d failed: %v", ch.proc, ch.err))
		}
	}
	if st.TooMany > 0 && !c.cfg.Naive {
		v := fmt.Sprintf("%d requests got 429 Too Many Requests", st.TooMany)
		if st.TooManyHost > 0 {
			v += fmt.Sprintf("; %d of them by the per-host limit", st.TooManyHost)
		}
		if st.TooManyLate > 0 {
			v += fmt.Sprintf("; for %d of them the pool's grants were an interval apart, but the request before was delayed by more than -margin + -tolerance on its way (a busy machine): raise -margin", st.TooManyLate)
		}
		s.Violations = append(s.Violations, v)
	}
	if st.FetchedTwice > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d pages were fetched more than once", st.FetchedTwice))
	}
	for _, id := range s.Retired {
		if !slices.Contains(s.Dead, id) {
			s.Violations = append(s.Violations, fmt.Sprintf("the pool retired %s, which was not dead (a ban longer than the back-offs of -retire-after 429s?)", id))
		}
	}
	if st.NeedlessLogins > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d logins while the account's cookie was still valid", st.NeedlessLogins))
	}
	s.OK = len(s.Violations) == 0
	if math.IsNaN(s.RateRatio) || math.IsInf(s.RateRatio, 0) {
		s.RateRatio = 0
	}
	return s
}

// cleanup deletes the crawl's keys: the frontier and the seen set in the
// crawl DB, the pool's and the locks' keys in the client's DB.
func (c *coordinator) cleanup(ctx context.Context) {
	dbs := []int{c.cfg.CrawlDB}
	if o, err := redis.ParseURL(c.cfg.Redis); err == nil && o.DB != c.cfg.CrawlDB {
		dbs = append(dbs, o.DB)
	} else if len(c.cfg.Addrs) > 0 && c.cfg.CrawlDB != 0 {
		dbs = append(dbs, 0)
	}
	for _, n := range dbs {
		db, err := c.client.DB(n)
		if err != nil {
			continue
		}
		del := func(ctx context.Context, node *redis.Client) error {
			iter := node.Scan(ctx, 0, c.prefix+":*", 200).Iterator()
			for iter.Next(ctx) {
				_ = node.Del(ctx, iter.Val()).Err()
			}
			return nil
		}
		switch db := db.(type) {
		case *redis.ClusterClient: // every master holds some of the keys
			_ = db.ForEachMaster(ctx, del)
		case *redis.Client:
			_ = del(ctx, db)
		}
	}
}

// redisOptions connects to one server (url), a Redis Cluster (addrs) or a
// master through its Sentinels (addrs and master).
func redisOptions(url string, addrs []string, master, prefix string) xsync.Options {
	if len(addrs) == 0 {
		return xsync.Options{URL: url, KeyPrefix: prefix}
	}
	return xsync.Options{Addrs: addrs, MasterName: master, Cluster: master == "", KeyPrefix: prefix}
}
