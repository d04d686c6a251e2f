package main

// A worker process: W goroutines that crawl the site with the accounts of
// the shared pool. The coordinator starts P of these (the program re-execs
// itself with the spec below in the environment); they share nothing but
// Redis:
//
//   - the frontier, a Redis list of page paths to fetch, and the set of every
//     path ever queued (SADD answers 1 only to the first process that adds
//     a path, so each page is queued once across all processes);
//   - the account pool: WaitAskOne hands an account out only when its
//     interval has passed since its last use, by Redis's clock; each use is
//     reported (Pool.Report): a 200 as Succeeded, a 429 (a ban) as Blocked,
//     which keeps the account away for a back-off, a refused login as
//     Failed, so that a dead account is retired after a few;
//   - a lock per account, under which an expired cookie is renewed;
//   - a politeness Limiter per host: every process together sends the site
//     no more pages than its per-host limit allows.
//
// The process talks to the coordinator over its standard streams: it
// writes JSON lines (ready, progress, result) on stdout, starts crawling
// when it reads "go" on stdin and stops when stdin is closed.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
)

// workerEnv is the environment variable that makes the program a worker
// process; its value is the workerSpec as JSON.
const workerEnv = "XSYNC_CRAWLER_WORKER"

// workerSpec is what a worker process needs to know.
type workerSpec struct {
	Proc       int      `json:"proc"`        // 1..P
	Workers    int      `json:"workers"`     // goroutines
	Redis      string   `json:"redis"`       // redis:// URL, or
	Addrs      []string `json:"addrs"`       // a Cluster's nodes, or the Sentinels
	MasterName string   `json:"master_name"` // with Addrs: Sentinel
	Prefix     string   `json:"prefix"`      // xsync KeyPrefix of this run
	Pool       string   `json:"pool"`        // name of the account pool
	CrawlDB    int      `json:"crawl_db"`    // DB of the frontier and the seen set
	Site       string   `json:"site"`        // http://127.0.0.1:port
	Naive      bool     `json:"naive"`       // take random accounts, ignore intervals
	PageLimit  int      `json:"page_limit"`  // 0: none
	// HostEvery is the time between two pages to one host, kept by a
	// Limiter; 0: no host limit. AccountWait is how long a worker whose
	// turn came waits for an account.
	HostEvery   time.Duration `json:"host_every"`
	AccountWait time.Duration `json:"account_wait"`
	Metrics     bool          `json:"metrics"` // serve xsync's metrics on a loopback port
	// The pool's health policy (see xsync.HealthPolicy).
	Backoff     time.Duration `json:"backoff"`
	MaxBackoff  time.Duration `json:"max_backoff"`
	RetireAfter int           `json:"retire_after"`
}

// health is the pool's health policy of spec.
func (s workerSpec) health() xsync.PoolOption {
	return xsync.Health(xsync.HealthPolicy{Backoff: s.Backoff, MaxBackoff: s.MaxBackoff, RetireAfter: s.RetireAfter})
}

// crawlKeys are the Redis keys of one crawl, in the crawl DB.
type crawlKeys struct {
	Frontier string // list: paths to fetch
	Seen     string // set: every path ever queued
	Claimed  string // counter: paths taken from the frontier (for -pages)
	Done     string // counter: pages fetched and their links queued
}

func keysOf(prefix string) crawlKeys {
	return crawlKeys{
		Frontier: prefix + ":frontier",
		Seen:     prefix + ":seen",
		Claimed:  prefix + ":claimed",
		Done:     prefix + ":done",
	}
}

// account is the payload of an account's container in the pool: what any
// worker needs to use the account, or to log it in again.
type account struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Cookie   string `json:"cookie"`
}

// procResult is what a worker process counted; the coordinator adds them up.
type procResult struct {
	Fetched      int64 `json:"fetched"`       // pages fetched (200)
	TooMany      int64 `json:"too_many"`      // 429 answers received
	Expired      int64 `json:"expired"`       // 401 answers received
	Logins       int64 `json:"logins"`        // logins done under the account's lock
	ReusedCookie int64 `json:"reused_cookie"` // waited on the lock, then found a new cookie
	Takes        int64 `json:"takes"`         // accounts taken from the pool
	Refused      int64 `json:"refused"`       // logins refused (403): the account is dead
	Reports      int64 `json:"reports"`       // outcomes reported to the pool
	Errors       int64 `json:"errors"`        // failed requests other than 401/429
	Missed       int64 `json:"missed"`        // host turns that passed while no account was ready
	// PageLimit: the process stopped by itself, because the crawl had
	// claimed every page the page limit allows.
	PageLimit bool `json:"page_limit,omitempty"`
}

// message is one JSON line from a worker process to the coordinator.
type message struct {
	Event   string      `json:"event"` // "ready", "progress", "result"
	Proc    int         `json:"proc"`
	Waiting int64       `json:"waiting"` // goroutines waiting for an account
	Result  *procResult `json:"result,omitempty"`
	Metrics string      `json:"metrics,omitempty"` // "ready": host:port of its /metrics
}

// process is one worker process.
type process struct {
	spec   workerSpec
	client *xsync.Client
	pool   *xsync.Pool
	polite *xsync.Limiter // per host; nil: no host limit
	host   string
	db     redis.UniversalClient
	keys   crawlKeys
	http   *http.Client
	errlog io.Writer

	waiting                                                        atomic.Int64
	fetched, tooMany, expired, logins, reused, takes, errs, missed atomic.Int64
	refused, reports                                               atomic.Int64
	limitReached                                                   atomic.Bool // see procResult.PageLimit
}

// runWorker is the main function of a worker process.
func runWorker(specJSON string, stdin io.Reader, stdout, stderr io.Writer) int {
	var spec workerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(stderr, "worker: bad %s: %v\n", workerEnv, err)
		return 2
	}
	// One labelled client per process; any code of the process could find
	// it again with xsync.Resolve("crawler").
	opts := redisOptions(spec.Redis, spec.Addrs, spec.MasterName, spec.Prefix)
	var metricsAddr string
	if spec.Metrics {
		m, err := newPromMetrics()
		if err != nil {
			fmt.Fprintf(stderr, "worker %d: metrics: %v\n", spec.Proc, err)
			return 2
		}
		defer m.shutdown()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "worker %d: metrics: %v\n", spec.Proc, err)
			return 2
		}
		srv := serveMetrics(ln, m.handler())
		defer srv.close()
		opts.MeterProvider, metricsAddr = m.provider, ln.Addr().String()
	}
	client, err := xsync.Register("crawler", opts)
	if err != nil {
		fmt.Fprintf(stderr, "worker %d: %v\n", spec.Proc, err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Close(ctx); err != nil {
			fmt.Fprintf(stderr, "worker %d: %v\n", spec.Proc, err)
		}
	}()
	db, err := client.DB(spec.CrawlDB)
	if err != nil {
		fmt.Fprintf(stderr, "worker %d: %v\n", spec.Proc, err)
		return 2
	}
	p := &process{
		spec:   spec,
		client: client,
		pool:   client.Pool(spec.Pool, spec.health()),
		db:     db,
		keys:   keysOf(spec.Prefix),
		http:   newHTTPClient(spec.Workers),
		errlog: stderr,
	}
	defer p.http.CloseIdleConnections()
	if spec.HostEvery > 0 && !spec.Naive {
		u, err := url.Parse(spec.Site)
		if err != nil {
			fmt.Fprintf(stderr, "worker %d: site %q: %v\n", spec.Proc, spec.Site, err)
			return 2
		}
		// One page per HostEvery, 2 at once: a turn taken late is not
		// lost. The rest of the site's burst absorbs the delays between a
		// turn and its page.
		p.polite = client.Limiter("politeness", xsync.Limit{Rate: 1, Period: spec.HostEvery, Burst: 2})
		p.host = u.Host
	}

	out := &lineWriter{enc: json.NewEncoder(stdout)}
	out.send(message{Event: "ready", Proc: spec.Proc, Metrics: metricsAddr})

	// Wait for "go"; then crawl until stdin is closed.
	in := bufio.NewScanner(stdin)
	if !in.Scan() || in.Text() != "go" {
		return 0 // the coordinator gave up before the start
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for in.Scan() {
		}
		cancel()
	}()

	var reporter sync.WaitGroup
	reporter.Add(1)
	go func() {
		defer reporter.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				out.send(message{Event: "progress", Proc: spec.Proc, Waiting: p.waiting.Load()})
			}
		}
	}()

	p.crawl(ctx)
	cancel()
	reporter.Wait()
	out.send(message{Event: "result", Proc: spec.Proc, Result: p.result()})
	return 0
}

// crawl runs the feeder and the workers until ctx ends or the feeder runs
// out of pages it may fetch.
func (p *process) crawl(ctx context.Context) {
	paths := make(chan string)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.feed(ctx, paths)
	}()
	for range p.spec.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range paths {
				p.fetchOne(ctx, path)
			}
		}()
	}
	wg.Wait()
}

// feed takes paths from the shared frontier and hands them to the workers
// of this process, one at a time. It closes paths when it stops.
func (p *process) feed(ctx context.Context, paths chan<- string) {
	defer close(paths)
	for ctx.Err() == nil {
		// BLPOP's timeout is in whole seconds: go-redis rounds less up to 1s.
		res, err := p.db.BLPop(ctx, time.Second, p.keys.Frontier).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing queued yet; pages in flight will queue more
		}
		if err != nil {
			if ctx.Err() == nil {
				p.fail("frontier", err)
				wait(ctx, 100*time.Millisecond)
			}
			continue
		}
		path := res[1]
		if p.spec.PageLimit > 0 {
			n, err := p.db.Incr(ctx, p.keys.Claimed).Result()
			if err != nil {
				if ctx.Err() == nil {
					p.fail("frontier", err)
				}
				return
			}
			if n > int64(p.spec.PageLimit) {
				p.limitReached.Store(true)
				return // the crawl has claimed all the pages it may fetch
			}
		}
		select {
		case paths <- path:
		case <-ctx.Done():
			return
		}
	}
}

// fetchOne fetches path with the next account the pool allows, and queues
// the links it finds. It tries until the page is fetched or ctx ends.
func (p *process) fetchOne(ctx context.Context, path string) {
	for ctx.Err() == nil {
		takeCtx, cancel := ctx, context.CancelFunc(func() {})
		if p.polite != nil {
			// The host's turn first, then an account, waited for no longer
			// than the site's burst absorbs: the page then goes at most
			// that late after its turn, and at once after the account's
			// grant (a page held back after its grant could come less
			// than an interval before the account's next use).
			if err := p.polite.Wait(ctx, p.host); err != nil {
				if ctx.Err() == nil {
					p.fail("host limit", err)
					wait(ctx, 100*time.Millisecond)
				}
				continue
			}
			takeCtx, cancel = context.WithTimeout(ctx, p.spec.AccountWait)
		}
		c, err := p.take(takeCtx)
		cancel()
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case takeCtx.Err() != nil:
				p.missed.Add(1) // the turn passed unused: wait for the next
			default:
				p.fail("take an account", err)
				wait(ctx, 100*time.Millisecond)
			}
			continue
		}
		var acc account
		if err := json.Unmarshal([]byte(c.Data), &acc); err != nil {
			p.fail("account "+c.ID, err)
			continue
		}
		status, body, err := p.get(ctx, path, acc.Cookie, c)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				p.fail("get "+path, err)
			}
		case status == http.StatusOK:
			p.fetched.Add(1)
			if err := p.enqueue(ctx, links(body)); err != nil && ctx.Err() == nil {
				p.fail("enqueue", err)
			}
			p.report(ctx, c.ID, xsync.Succeeded)
			return
		case status == http.StatusTooManyRequests:
			// The account is banned for a while (or, without the pool's
			// limits, was used too soon): the pool keeps it away for a
			// back-off that doubles while the 429s go on.
			p.tooMany.Add(1)
			if p.spec.Naive {
				wait(ctx, c.Interval) // a careful crawler without xsync backs off
			}
			p.report(ctx, c.ID, xsync.Blocked)
		case status == http.StatusUnauthorized:
			// The cookie expired. Log in again (or find that another worker
			// did), then take an account afresh: the login took time, and
			// the turn we were given is no longer ours. A refused login is
			// the account's failure: enough of them in a row retire it.
			p.expired.Add(1)
			err := p.relogin(ctx, c.ID, acc.Cookie)
			switch {
			case errors.Is(err, errLoginRefused):
				p.refused.Add(1)
				p.report(ctx, c.ID, xsync.Failed)
			case err != nil && ctx.Err() == nil:
				p.fail("login "+c.ID, err)
			}
		default:
			p.fail("get "+path, fmt.Errorf("HTTP %d", status))
		}
	}
}

// report tells the pool how the use of account id went; the naive crawler
// keeps no health.
func (p *process) report(ctx context.Context, id string, o xsync.Outcome) {
	if p.spec.Naive {
		return
	}
	if err := p.pool.Report(ctx, id, o); err != nil && ctx.Err() == nil {
		p.fail("report "+id, err)
		return
	}
	p.reports.Add(1)
}

// take takes an account: with xsync's pool, the one ready the longest (it
// waits until one is ready); in naive mode, any account at random.
func (p *process) take(ctx context.Context) (xsync.Container, error) {
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	var c xsync.Container
	var err error
	if p.spec.Naive {
		c, err = p.pool.AcquireRandomOne(ctx)
	} else {
		c, err = p.pool.WaitAskOne(ctx)
	}
	if err == nil {
		p.takes.Add(1)
	}
	return c, err
}

// relogin renews the cookie of account id, which the site found expired.
// Under the account's lock, it reads the account again: when the cookie is
// still the expired one, it logs in and stores the new cookie in the pool;
// when another worker (in this process or another) did so while we waited
// for the lock, there is nothing to do. So each expired cookie costs one
// login, however many workers find it expired.
func (p *process) relogin(ctx context.Context, id, expired string) error {
	return p.client.WithLock(ctx, []string{"login:" + id}, func(ctx context.Context) error {
		c, err := p.pool.Get(ctx, id)
		if err != nil {
			return err
		}
		if c.Retired {
			return nil // found dead by others: the pool hands it out no more
		}
		var acc account
		if err := json.Unmarshal([]byte(c.Data), &acc); err != nil {
			return fmt.Errorf("account %s: %w", id, err)
		}
		if acc.Cookie != expired {
			p.reused.Add(1)
			return nil
		}
		cookie, err := login(ctx, p.http, p.spec.Site, acc.User, acc.Password)
		if err != nil {
			return err
		}
		acc.Cookie = cookie
		data, err := json.Marshal(acc)
		if err != nil {
			return err
		}
		c.Data = string(data)
		if err := p.pool.Put(ctx, c); err != nil { // keeps the account's turn and usage
			return err
		}
		p.logins.Add(1)
		return nil
	})
}

// get fetches path with cookie; it returns the status and the body. With
// the pool, it tells the site when the account was granted (for the score:
// see site.go): the take moved NextAvailable to grant time + Interval.
func (p *process) get(ctx context.Context, path, cookie string, c xsync.Container) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.spec.Site+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	if !p.spec.Naive {
		req.Header.Set("X-Pool-Granted", strconv.FormatInt(c.NextAvailable.Add(-c.Interval).UnixMilli(), 10))
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// enqueue queues the paths no process has queued before: SADD answers 1
// only for a path new to the seen set. Then it counts the page as done.
func (p *process) enqueue(ctx context.Context, paths []string) error {
	adds := make([]*redis.IntCmd, len(paths))
	_, err := p.db.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, path := range paths {
			adds[i] = pipe.SAdd(ctx, p.keys.Seen, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var fresh []any
	for i, add := range adds {
		if add.Val() == 1 {
			fresh = append(fresh, paths[i])
		}
	}
	_, err = p.db.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		if len(fresh) > 0 {
			pipe.RPush(ctx, p.keys.Frontier, fresh...)
		}
		pipe.Incr(ctx, p.keys.Done)
		return nil
	})
	return err
}

func (p *process) fail(what string, err error) {
	p.errs.Add(1)
	fmt.Fprintf(p.errlog, "worker %d: %s: %v\n", p.spec.Proc, what, err)
}

func (p *process) result() *procResult {
	return &procResult{
		Fetched:      p.fetched.Load(),
		TooMany:      p.tooMany.Load(),
		Expired:      p.expired.Load(),
		Logins:       p.logins.Load(),
		ReusedCookie: p.reused.Load(),
		Takes:        p.takes.Load(),
		Refused:      p.refused.Load(),
		Reports:      p.reports.Load(),
		Errors:       p.errs.Load(),
		Missed:       p.missed.Load(),
		PageLimit:    p.limitReached.Load(),
	}
}

var linkRE = regexp.MustCompile(`href="(/page/\d+)"`)

// links returns the page paths a page links to.
func links(body []byte) []string {
	var out []string
	for _, m := range linkRE.FindAllSubmatch(body, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// errLoginRefused is a login the site refused (403): the account is dead.
var errLoginRefused = errors.New("login refused")

// login logs user in and returns the session cookie.
func login(ctx context.Context, hc *http.Client, site, user, password string) (string, error) {
	form := url.Values{"user": {user}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, site+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusForbidden {
		return "", fmt.Errorf("%w: %s", errLoginRefused, user)
	}
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("login %s: HTTP %d, no cookie", user, resp.StatusCode)
}

// newHTTPClient returns a client that keeps a connection per worker.
func newHTTPClient(workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = workers + 8
	t.MaxIdleConnsPerHost = workers + 8
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// wait waits for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// lineWriter writes JSON lines from several goroutines.
type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *lineWriter) send(m message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}
