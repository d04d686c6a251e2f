package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain doubles as the worker process: the coordinator under test
// re-execs the test binary with the worker spec in the environment.
func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(runWorker(spec, os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// redisFlags are the flags that name the test deployment: -redis URL of
// the one server, or -addrs (and -master-name) of the Cluster or the
// Sentinels that `make test-cluster` and `make test-sentinel` start.
func redisFlags(t *testing.T) []string {
	t.Helper()
	switch os.Getenv("REDIS_TOPOLOGY") {
	case "cluster":
		return []string{"-addrs", os.Getenv("REDIS_CLUSTER_ADDRS")}
	case "sentinel":
		return []string{"-addrs", os.Getenv("REDIS_SENTINEL_ADDRS"), "-master-name", os.Getenv("REDIS_MASTER_NAME")}
	}
	return []string{"-redis", redisURL(t)}
}

// redisURL is the test server's URL. The tests need a real Redis: without
// one they fail, they do not skip. `make test` starts one.
func redisURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return "redis://" + addr + "/0"
	}
	t.Fatal("neither REDIS_URL nor REDIS_ADDR is set: run the tests with `make test`, which starts a private redis-server")
	return ""
}

// crawlJSON runs the program with args and -json, and returns its exit
// status and summary.
func crawlJSON(t *testing.T, args ...string) (int, summary) {
	t.Helper()
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	// The tests share the machine with other test binaries: the pool gets a
	// wider margin than the demo's 30ms against their scheduling delays.
	args = append(append(redisFlags(t), "-json", "-margin", "40ms"), args...)
	code := run(context.Background(), args, &stdout, stderr)
	t.Logf("crawler %s\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), stderr.String(), stdout.String())
	var s summary
	if code != 2 {
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatalf("summary is not JSON: %v", err)
		}
	}
	return code, s
}

// The short form of the demo: 2 processes of 8 workers share 8 accounts
// whose cookies expire during the run, and the site's per-host limit of 15
// pages/s (below the accounts' 22); two accounts get banned now and then,
// one dies for good. The pool must keep every account within its interval
// and the limiter the host within its limit (no 429 but the bans'), the
// workers' reports must absorb the bans (the pool backs the account off)
// and retire the dead account and no other; the seen set must keep every
// page to one fetch, the login lock must hold logins to one per expired
// cookie, and the crawl must be kept busy: at least 80% of the site's
// maximum rate, counting each account only while it was neither banned nor
// dead.
func TestCrawlAcrossProcessesBreaksNoRule(t *testing.T) {
	code, s := crawlJSON(t,
		"-procs", "2", "-workers", "8", "-accounts", "8",
		"-min-interval", "200ms", "-max-interval", "600ms", "-host-rate", "15",
		"-cookie-ttl", "5s", "-login-delay", "300ms",
		"-banned", "2", "-ban-every", "8", "-ban-for", "500ms", "-backoff", "300ms",
		"-dead", "1", "-dead-after", "3", "-retire-after", "3",
		"-duration", "8s")
	// A 429 for an account whose grants were an interval apart by the
	// server's clock came from the request's delay on its way to the site
	// (this machine's scheduling, past -margin), not from the pool: at
	// most two of them are logged, not failed. Every other 429 fails.
	late := s.TooMany > 0 && s.TooMany == s.TooManyLate && s.TooManyHost == 0 && s.TooManyLate <= 2
	violations := s.Violations
	if late {
		violations = slices.DeleteFunc(slices.Clone(violations), func(v string) bool { return strings.Contains(v, "Too Many Requests") })
		t.Logf("%d 429s from requests delayed on their way; the pool's grants were an interval apart", s.TooManyLate)
	}
	if len(violations) != 0 || (code != 0 || !s.OK) && !late {
		t.Errorf("exit status %d, violations %q; want 0 and none", code, s.Violations)
	}
	if s.TooMany != 0 && !late {
		t.Errorf("%d answers were 429 (%d by the host limit, %d delayed on their way); the pool and the limiter must prevent every one", s.TooMany, s.TooManyHost, s.TooManyLate)
	}
	if s.HostRate != 15 || s.MaxRate != 15 {
		t.Errorf("host rate %v, max rate %v: want the host limit of 15 to bind", s.HostRate, s.MaxRate)
	}
	if s.Pages == 0 || s.FetchedTwice != 0 {
		t.Errorf("%d pages fetched, %d of them twice; want some, none twice", s.Pages, s.FetchedTwice)
	}
	if s.Bans == 0 || s.Banned == 0 {
		t.Errorf("%d bans refused %d requests; the test must exercise bans", s.Bans, s.Banned)
	}
	if len(s.Dead) != 1 || !slices.Equal(s.Retired, s.Dead) || s.Refused < 3 {
		t.Errorf("dead %v, retired %v after %d refused logins; want the one dead account retired, after at least 3", s.Dead, s.Retired, s.Refused)
	}
	if s.Expiries == 0 {
		t.Errorf("no cookie expired during the run; the test must exercise re-login")
	}
	// The stop may come between an expiry and its login: those cookies
	// are left out.
	if renewed := s.Expiries - s.Unrenewed; s.NeedlessLogins != 0 || s.Relogins != renewed || s.LoginsPerExpiry != 1 {
		t.Errorf("%d logins for %d renewed expired cookies (%d while the cookie was valid); want exactly one each", s.Relogins, renewed, s.NeedlessLogins)
	}
	if s.RateRatio < 0.8 {
		t.Errorf("achieved %.1f pages/s, %.0f%% of the site's maximum %.1f; want at least 80%%", s.Rate, 100*s.RateRatio, s.MaxRate)
	}
	t.Logf("achieved %.1f pages/s = %.1f%% of %.1f; %d logins for %d expiries, %d reused", s.Rate, 100*s.RateRatio, s.MaxRate, s.Relogins, s.Expiries, s.ReusedCookie)
}

// Without a time limit the crawl ends when the site is exhausted: every
// page is then fetched exactly once, by whichever process dequeued it.
func TestCrawlFetchesEveryPageOnce(t *testing.T) {
	code, s := crawlJSON(t,
		"-procs", "2", "-workers", "8", "-accounts", "8",
		"-min-interval", "20ms", "-max-interval", "60ms",
		"-site-pages", "120", "-duration", "0")
	if code != 0 || !s.OK {
		t.Errorf("exit status %d, violations %q; want 0 and none", code, s.Violations)
	}
	if s.Stop != "every page of the site fetched" {
		t.Errorf("stopped by %q; want the end of the site", s.Stop)
	}
	if s.Pages != s.SitePages || s.FetchedTwice != 0 {
		t.Errorf("%d fetches of the %d pages, %d pages twice; want each page once", s.Pages, s.SitePages, s.FetchedTwice)
	}
}

// -pages stops the crawl after exactly that many pages: the frontier hands
// out no more.
func TestCrawlStopsAtThePageLimit(t *testing.T) {
	code, s := crawlJSON(t,
		"-procs", "2", "-workers", "4", "-accounts", "4",
		"-min-interval", "20ms", "-max-interval", "40ms",
		"-pages", "40", "-duration", "0")
	if code != 0 || s.Pages != 40 || s.Stop != "page limit (40)" {
		t.Errorf("exit status %d, %d pages, stopped by %q; want 0, 40, the page limit", code, s.Pages, s.Stop)
	}
}

// A worker process that ends by itself because the crawl has claimed the
// last page it may fetch does not stop the crawl: the others may still be
// fetching theirs. The crawl stops at the page limit once every process has
// ended so; any other exit (an error, no result, a result without the page
// limit) is early.
func TestCrawlPageLimitWaitsForEveryWorkerProcessToEnd(t *testing.T) {
	exit := func(f *fleet, proc int, r *procResult, err error) string {
		ev := event{child: f.children[proc-1], err: err}
		ev.child.result = r
		f.handle(ev)
		return f.exitStop(ev, 40)
	}
	limit := &procResult{Fetched: 20, PageLimit: true}
	f := &fleet{children: []*child{{proc: 1}, {proc: 2}}}
	if got := exit(f, 1, limit, nil); got != "" {
		t.Fatalf("first process ended at the page limit: stop %q, want the crawl to go on", got)
	}
	if got := exit(f, 2, limit, nil); got != "page limit (40)" {
		t.Fatalf("every process ended at the page limit: stop %q, want \"page limit (40)\"", got)
	}
	for name, tc := range map[string]struct {
		r   *procResult
		err error
	}{
		"no result":         {nil, nil},
		"not at the limit":  {&procResult{Fetched: 3}, nil},
		"exit status not 0": {limit, errors.New("exit status 2")},
	} {
		f := &fleet{children: []*child{{proc: 1}, {proc: 2}}}
		if got := exit(f, 2, tc.r, tc.err); got != "worker process 2 ended early" {
			t.Errorf("%s: stop %q, want \"worker process 2 ended early\"", name, got)
		}
	}
}

// -naive takes random accounts, ignoring their intervals: the site answers
// 429, which the summary shows, and the exit status is still 0.
func TestNaiveCrawlMeets429s(t *testing.T) {
	code, s := crawlJSON(t,
		"-naive", "-procs", "2", "-workers", "8", "-accounts", "4",
		"-min-interval", "100ms", "-max-interval", "200ms", "-duration", "1500ms")
	if code != 0 || s.Mode != "naive" {
		t.Errorf("exit status %d, mode %q; want 0, naive", code, s.Mode)
	}
	if s.TooMany == 0 {
		t.Errorf("no 429 in naive mode; 16 workers on 4 accounts must meet some")
	}
}

// Ctrl-C (the context given to run) stops the crawl like a time limit: the
// workers report, the summary is printed, nothing is left running.
func TestInterruptStopsTheCrawlAndStillReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	// Interrupt once the crawl is under way: at the first progress line.
	stderr := &lockedBuffer{onWrite: func(p []byte) {
		if bytes.Contains(p, []byte("pages/s")) {
			cancel()
		}
	}}
	code := run(ctx, []string{"-redis", redisURL(t), "-json", "-procs", "2", "-workers", "4", "-accounts", "4",
		"-min-interval", "20ms", "-max-interval", "40ms", "-duration", "0"}, &stdout, stderr)
	var s summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stderr.String())
	}
	if code != 0 || s.Stop != "interrupted" || s.Pages == 0 {
		t.Errorf("exit status %d, stopped by %q after %d pages; want 0, interrupted, some", code, s.Stop, s.Pages)
	}
}

func TestBadFlagsExitWith2(t *testing.T) {
	for _, args := range [][]string{
		{"-redis", ""},
		{"-redis", "redis://127.0.0.1:1/0", "-accounts", "0"},
		{"-redis", "redis://127.0.0.1:1/0", "-min-interval", "2s", "-max-interval", "1s"},
		{"-redis", "redis://127.0.0.1:1/0", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d; want 2", args, code)
		}
		if !strings.Contains(errb.String(), "crawler") {
			t.Errorf("run(%q) said %q; want an explanation", args, errb.String())
		}
	}
}

// --- the site ---------------------------------------------------------

// clock is a hand-moved clock for the site.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func testSite(accounts ...siteAccount) (*site, *clock) {
	s := newSite(siteConfig{Pages: 50, Links: 4, Tolerance: 5 * time.Millisecond, Seed: 1, Accounts: accounts})
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = c.now
	return s, c
}

func siteLogin(t *testing.T, s *site, user, password string) string {
	t.Helper()
	form := url.Values{"user": {user}, "password": {password}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			return c.Value
		}
	}
	t.Fatalf("login %s: HTTP %d, no cookie", user, rec.Code)
	return ""
}

func siteGet(s *site, path, cookie string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// An account may fetch one page per interval, by the site's clock, give or
// take the tolerance; a refused request does not count as a use; accounts
// are limited separately.
func TestSiteAnswers429WhenAnAccountIsUsedSoonerThanItsInterval(t *testing.T) {
	s, clk := testSite(
		siteAccount{ID: "a", Password: "pa", Interval: 100 * time.Millisecond, CookieTTL: time.Hour},
		siteAccount{ID: "b", Password: "pb", Interval: 100 * time.Millisecond, CookieTTL: time.Hour},
	)
	a, b := siteLogin(t, s, "a", "pa"), siteLogin(t, s, "b", "pb")
	steps := []struct {
		after  time.Duration
		cookie string
		want   int
	}{
		{0, a, http.StatusOK},                    // first use
		{0, b, http.StatusOK},                    // another account, same instant
		{50 * time.Millisecond, a, 429},          // half an interval later
		{44 * time.Millisecond, a, 429},          // 94ms: more than the 5ms tolerance early
		{1 * time.Millisecond, a, http.StatusOK}, // 95ms: within the tolerance
		{90 * time.Millisecond, a, 429},          // the 429s before did not count: 90ms after the last use
		{5 * time.Millisecond, a, http.StatusOK}, // 95ms after the last use
		{0, b, http.StatusOK},                    // b's last use was 190ms ago
	}
	for i, st := range steps {
		clk.advance(st.after)
		if got, _ := siteGet(s, "/page/"+string(rune('0'+i)), st.cookie); got != st.want {
			t.Errorf("step %d: HTTP %d; want %d", i, got, st.want)
		}
	}
	if got := s.snapshot(); got.TooMany != 3 || got.Served != 5 {
		t.Errorf("site counted %d 429s and %d pages; want 3 and 5", got.TooMany, got.Served)
	}
	if got := s.snapshot().MinSlack; got != -50*time.Millisecond {
		t.Errorf("closest request %v from the interval; want -50ms", got)
	}
}

// The site limits each host (the Host header) to HostRate pages per
// second, HostBurst at once, whichever accounts it uses; a refused request
// counts as a 429 of the host and as no use of its account.
func TestSiteAnswers429WhenAHostExceedsItsLimit(t *testing.T) {
	var accounts []siteAccount
	for _, id := range []string{"a", "b", "c", "d"} {
		accounts = append(accounts, siteAccount{ID: id, Password: "p" + id, Interval: time.Millisecond, CookieTTL: time.Hour})
	}
	s, clk := testSite(accounts...)
	s.cfg.HostRate, s.cfg.HostBurst = 10, 2 // one page per 100ms, 2 at once
	var cookies []string
	for _, a := range accounts {
		cookies = append(cookies, siteLogin(t, s, a.ID, a.Password))
	}
	get := func(host string, i int) int {
		req := httptest.NewRequest(http.MethodGet, "/page/1", nil)
		req.Host = host
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookies[i]})
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code
	}
	steps := []struct {
		advance time.Duration
		host    string
		account int
		want    int
	}{
		{0, "crawler-1", 0, http.StatusOK},
		{0, "crawler-1", 1, http.StatusOK},                     // the burst of 2
		{0, "crawler-1", 2, http.StatusTooManyRequests},        // a third at once
		{0, "crawler-2", 2, http.StatusOK},                     // another host has its own
		{96 * time.Millisecond, "crawler-1", 3, http.StatusOK}, // 100ms less the tolerance
		{0, "crawler-1", 3, http.StatusTooManyRequests},
		{50 * time.Millisecond, "crawler-1", 2, http.StatusTooManyRequests},
		{50 * time.Millisecond, "crawler-1", 2, http.StatusOK},
	}
	for i, st := range steps {
		clk.advance(st.advance)
		if got := get(st.host, st.account); got != st.want {
			t.Fatalf("step %d (%s, account %d): HTTP %d, want %d", i, st.host, st.account, got, st.want)
		}
	}
	if got := s.snapshot(); got.TooManyHost != 3 || got.TooMany != 3 || got.Served != 5 {
		t.Errorf("site counted %d 429s (%d by host) and %d pages; want 3 (3) and 5", got.TooMany, got.TooManyHost, got.Served)
	}
	if got := s.capacity(clk.now(), clk.now().Add(time.Second)); got != 10 {
		t.Errorf("capacity of a second: %v pages, want the host limit of 10", got)
	}
}

// A crawler using the pool tells the site when each account was granted. A
// 429 for a grant that came an interval after the previous use's grant is
// blamed on the delivery (the request before was delayed), not the pool.
func TestSiteBlamesA429OnTheDeliveryWhenTheGrantsWereAnIntervalApart(t *testing.T) {
	s, clk := testSite(siteAccount{ID: "a", Password: "pa", Interval: 100 * time.Millisecond, CookieTTL: time.Hour})
	cookie := siteLogin(t, s, "a", "pa")
	get := func(grantedMS int64) int {
		req := httptest.NewRequest(http.MethodGet, "/page/1", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
		req.Header.Set("X-Pool-Granted", strconv.FormatInt(grantedMS, 10))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code
	}
	const t0 = 1_700_000_000_000
	clk.advance(40 * time.Millisecond) // granted at t0, delayed 40ms on its way
	if got := get(t0); got != http.StatusOK {
		t.Fatalf("first use: HTTP %d", got)
	}
	clk.advance(60 * time.Millisecond) // granted an interval later, on time
	if got := get(t0 + 100); got != http.StatusTooManyRequests {
		t.Fatalf("60ms after the delayed use: HTTP %d; want 429", got)
	}
	if got := get(t0 + 60); got != http.StatusTooManyRequests { // granted too soon
		t.Fatalf("granted 60ms after the last grant: HTTP %d; want 429", got)
	}
	if st := s.snapshot(); st.TooMany != 2 || st.TooManyLate != 1 {
		t.Errorf("429s %d, of which delivery's fault %d; want 2 and 1", st.TooMany, st.TooManyLate)
	}
}

// A page needs a valid cookie; an expired cookie is counted once as an
// expiry; a login while the latest cookie is still valid is needless.
func TestSiteCookiesExpireAndLoginsAreCounted(t *testing.T) {
	s, clk := testSite(siteAccount{ID: "a", Password: "pa", Interval: time.Millisecond, CookieTTL: time.Second})
	if got, _ := siteGet(s, "/page/0", ""); got != http.StatusUnauthorized {
		t.Errorf("no cookie: HTTP %d; want 401", got)
	}
	if got, _ := siteGet(s, "/page/0", "forged"); got != http.StatusUnauthorized {
		t.Errorf("unknown cookie: HTTP %d; want 401", got)
	}
	form := url.Values{"user": {"a"}, "password": {"wrong"}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("wrong password: HTTP %d; want 403", rec.Code)
	}

	first := siteLogin(t, s, "a", "pa")
	clk.advance(999 * time.Millisecond)
	if got, _ := siteGet(s, "/page/1", first); got != http.StatusOK {
		t.Errorf("cookie 999ms old: HTTP %d; want 200", got)
	}
	clk.advance(time.Millisecond)
	for range 2 {
		if got, body := siteGet(s, "/page/2", first); got != http.StatusUnauthorized || !strings.Contains(body, "expired") {
			t.Errorf("cookie 1s old: HTTP %d %q; want 401 session expired", got, body)
		}
	}
	second := siteLogin(t, s, "a", "pa") // after the expiry: needed
	_ = siteLogin(t, s, "a", "pa")       // second is still valid: needless
	if got, _ := siteGet(s, "/page/2", second); got != http.StatusOK {
		t.Errorf("new cookie: HTTP %d; want 200", got)
	}
	st := s.snapshot()
	if st.Expiries != 1 || st.Logins != 3 || st.Relogins != 2 || st.NeedlessLogins != 1 {
		t.Errorf("expiries %d, logins %d, relogins %d, needless %d; want 1, 3, 2, 1",
			st.Expiries, st.Logins, st.Relogins, st.NeedlessLogins)
	}
}

// A banned account is refused with 429 "banned" for BanFor after every
// BanEvery pages, apart from the 429s of the interval rule; a dying account
// is disabled after DeadAfter pages: its cookies get 401, its logins 403.
// The site's capacity leaves out the time an account was banned or dead.
func TestSiteBansAndDisablesAccounts(t *testing.T) {
	s, clk := testSite(
		siteAccount{ID: "b", Password: "pb", Interval: 100 * time.Millisecond, CookieTTL: time.Hour, BanEvery: 2, BanFor: time.Second},
		siteAccount{ID: "d", Password: "pd", Interval: 100 * time.Millisecond, CookieTTL: time.Hour, DeadAfter: 2},
	)
	start := clk.now()
	b, d := siteLogin(t, s, "b", "pb"), siteLogin(t, s, "d", "pd")
	for i, st := range []struct {
		after  time.Duration
		cookie string
		want   int
		body   string
	}{
		{0, b, http.StatusOK, ""},
		{0, d, http.StatusOK, ""},
		{100 * time.Millisecond, b, http.StatusOK, ""}, // b's second page: banned for 1s from now
		{0, d, http.StatusOK, ""},                      // d's second page: disabled from now
		{100 * time.Millisecond, b, 429, "banned"},
		{0, d, 401, "account disabled"},
		{899 * time.Millisecond, b, 429, "banned"},
		{1 * time.Millisecond, b, http.StatusOK, ""}, // the ban is over
	} {
		clk.advance(st.after)
		got, body := siteGet(s, "/page/1", st.cookie)
		if got != st.want || !strings.Contains(body, st.body) {
			t.Errorf("step %d: HTTP %d %q; want %d %q", i, got, body, st.want, st.body)
		}
	}
	form := url.Values{"user": {"d"}, "password": {"pd"}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("login of a disabled account: HTTP %d; want 403", rec.Code)
	}
	st := s.snapshot()
	if st.TooMany != 0 || st.Bans != 1 || st.Banned != 2 || st.Deaths != 1 || st.Disabled != 1 || st.RefusedLogins != 1 {
		t.Errorf("score %+v; want no 429 for the interval, 1 ban refusing 2 requests, 1 death, 1 disabled answer, 1 refused login", st)
	}
	if got := s.dead(); !slices.Equal(got, []string{"d"}) {
		t.Errorf("dead accounts %v; want [d]", got)
	}
	// 2s in all: b was banned for 1s of it, d dead for the last 1.9s.
	end := start.Add(2 * time.Second)
	if got, want := s.capacity(start, end), (1.0+0.1)/0.1; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("capacity over 2s: %.3f pages; want %.3f", got, want)
	}
}

// Every page is reachable from page 0, and serving a page again is counted.
func TestSitePagesLinkToEveryPageAndRepeatsAreCounted(t *testing.T) {
	s, clk := testSite(siteAccount{ID: "a", Password: "pa", Interval: time.Millisecond, CookieTTL: time.Hour})
	cookie := siteLogin(t, s, "a", "pa")
	seen := map[string]bool{"/page/0": true}
	queue := []string{"/page/0"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		clk.advance(time.Millisecond)
		code, body := siteGet(s, path, cookie)
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d", path, code)
		}
		for _, l := range links([]byte(body)) {
			if !seen[l] {
				seen[l] = true
				queue = append(queue, l)
			}
		}
	}
	if len(seen) != 50 {
		t.Errorf("reached %d pages from page 0; want all 50", len(seen))
	}
	clk.advance(time.Millisecond)
	siteGet(s, "/page/7", cookie)
	if st := s.snapshot(); st.Distinct != 50 || st.FetchedTwice != 1 || st.Served != 51 {
		t.Errorf("distinct %d, twice %d, served %d; want 50, 1, 51", st.Distinct, st.FetchedTwice, st.Served)
	}
	if code, _ := siteGet(s, "/page/50", cookie); code != http.StatusNotFound {
		t.Errorf("page 50 of 50: HTTP %d; want 404", code)
	}
}

// lockedBuffer is a bytes.Buffer for several goroutines (the progress and
// the worker processes' stderr).
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onWrite func(p []byte) // optional, called with each write
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onWrite != nil {
		b.onWrite(p)
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// -metrics serves the xsync metrics of every process of the crawl at one
// /metrics, in Prometheus's format, each series labelled with its process.
func TestMetricsOfEveryProcessAreServed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	stderr := &lockedBuffer{onWrite: func(p []byte) {
		if _, rest, ok := strings.Cut(string(p), "metrics at http://"); ok {
			addr <- strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "/metrics"))
		}
	}}
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-redis", redisURL(t), "-json", "-procs", "2", "-workers", "4", "-accounts", "4",
			"-min-interval", "20ms", "-max-interval", "40ms", "-duration", "0", "-metrics", "127.0.0.1:0"}, &stdout, stderr)
	}()
	var at string
	select {
	case at = <-addr:
	case code := <-done:
		t.Fatalf("the crawl ended (%d) before serving metrics:\n%s", code, stderr.String())
	}
	want := []string{
		`xsync_pool_granted_total{kind="ready",otel_scope_name="github.com/redisxsync/xsync",otel_scope_version="",pool="accounts",proc="1"}`,
		`xsync_pool_granted_total{kind="ready",otel_scope_name="github.com/redisxsync/xsync",otel_scope_version="",pool="accounts",proc="2"}`,
		`xsync_pool_containers{otel_scope_name="github.com/redisxsync/xsync",otel_scope_version="",pool="accounts",state="total",proc="0"} 4`,
		`# TYPE xsync_pool_wait_seconds histogram`,
	}
	var scrape string
	deadline := time.Now().Add(20 * time.Second)
	for {
		scrape = scrapeText(t, "http://"+at+"/metrics")
		missing := 0
		for _, w := range want {
			if !strings.Contains(scrape, w) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 20s the scrape did not have all of %q:\n%s", want, scrape)
		}
		time.Sleep(100 * time.Millisecond) // ok: polls an observation (the scrape) with a deadline
	}
	cancel()
	// The crawl's own rules are the other tests' business: on a machine
	// busy enough to delay a request into a 429 it exits 1, still a crawl
	// that ran and reported (2 would be one that could not run).
	if code := <-done; code != 0 && code != 1 {
		t.Errorf("exit status %d after the interrupt, want 0 or 1:\n%s", code, stderr.String())
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
