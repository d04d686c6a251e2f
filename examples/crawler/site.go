package main

// The target site: what a crawler meets on the web, in miniature. It runs in
// the coordinator process (net/http on 127.0.0.1, a free port) and keeps the
// score of the crawl, because only the site sees every request:
//
//   - GET /page/{n} needs the cookie of a logged-in account. Without one, or
//     with an unknown one, the answer is 401 "login required"; with a cookie
//     past its lifetime, 401 "session expired".
//   - Each account has an interval: a page request with an account that was
//     served a page less than interval - tolerance ago, by the site's own
//     clock, gets 429 Too Many Requests. A 429 does not count as a use. The
//     tolerance (default 5ms) absorbs the jitter of two processes talking
//     over loopback; it is small against the intervals (100ms and up).
//   - The site is polite to itself too: each host (the Host header) may be
//     sent HostRate pages per second, HostBurst at once, by the site's clock
//     give or take the tolerance; a request beyond that gets 429 Too Many
//     Requests, whichever account it uses, and does not count as a use.
//   - For the score only, a crawler using the pool sends the time at which
//     the pool granted the account (header X-Pool-Granted, Unix ms by
//     Redis's clock). A 429 whose grant came at least an interval after the
//     grant of the account's previous use is the delivery's fault (a
//     request delayed on its way by a busy machine), not the pool's.
//   - POST /login (form fields user, password) answers after a delay, as
//     real logins do, with a new cookie "sid" that expires after the
//     account's cookie lifetime. Earlier cookies stay valid until they
//     expire.
//   - Some accounts get banned for a while: after every BanEvery pages
//     served, the account is refused for BanFor, with 429 "banned" (counted
//     apart from the 429s of the interval rule: a crawler cannot avoid a
//     ban, only absorb it).
//   - Some accounts die for good: after DeadAfter pages served, the
//     account is disabled. Its cookies get 401 "account disabled" and its
//     logins 403.
//   - The site has a few thousand pages. Page n links to pages 2n+1 and
//     2n+2, so page 0 reaches every page, and to a few random ones.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cookieName is the name of the site's session cookie.
const cookieName = "sid"

// siteAccount is one account of the site, as the site's operators set it.
type siteAccount struct {
	ID        string
	Password  string
	Interval  time.Duration // at most one page per Interval
	CookieTTL time.Duration // lifetime of a cookie issued at login
	BanEvery  int           // banned after every BanEvery pages served; 0: never
	BanFor    time.Duration // how long a ban lasts
	DeadAfter int           // disabled for good after this many pages served; 0: never
}

// siteConfig shapes a site.
type siteConfig struct {
	Pages      int           // number of pages, at least 1
	Links      int           // links per page, at least 2
	Tolerance  time.Duration // slack of the 429 rule
	LoginDelay time.Duration // how long a login takes
	Seed       uint64        // the random links
	Accounts   []siteAccount
	HostRate   float64 // pages per second per host; 0: no host limit
	HostBurst  int     // pages at once per host; at least 1 when HostRate is set
}

// site is the target site; it is an http.Handler.
type site struct {
	cfg   siteConfig
	links [][]int
	mux   *http.ServeMux
	now   func() time.Time // the site's clock; tests replace it

	mu       sync.Mutex
	accounts map[string]*accountState
	sessions map[string]*session
	hosts    map[string]time.Time // per host: when its burst is full again (GCRA)
	served   []int                // times each page was served
	stats    siteStats
}

// accountState is what the site remembers about an account.
type accountState struct {
	siteAccount
	lastUse time.Time // last page served; zero before the first
	// lastGrant is when the pool granted the account for that use, by
	// Redis's clock (X-Pool-Granted); zero when not sent.
	lastGrant time.Time
	logins    int
	current   *session // the latest cookie issued
	served    int      // pages served
	bans      []period // the bans imposed so far, in order
	deadSince time.Time
}

// period is a span of the site's time: [from, to).
type period struct{ from, to time.Time }

// overlap is how much of p lies within [from, to).
func (p period) overlap(from, to time.Time) time.Duration {
	if p.from.After(from) {
		from = p.from
	}
	if p.to.Before(to) {
		to = p.to
	}
	return max(to.Sub(from), 0)
}

// session is one cookie issued at login.
type session struct {
	account *accountState
	expires time.Time
	expired bool // rejected as expired at least once
}

// siteStats is the site's score of the crawl.
type siteStats struct {
	Served         int           `json:"served"`          // pages served (200)
	Distinct       int           `json:"distinct"`        // distinct pages served
	FetchedTwice   int           `json:"fetched_twice"`   // pages served more than once
	TooMany        int           `json:"too_many"`        // 429 answers
	TooManyLate    int           `json:"too_many_late"`   // of which the pool's grants were an interval apart: the request before was delayed
	TooManyHost    int           `json:"too_many_host"`   // of which the host's limit refused
	Unauthorized   int           `json:"unauthorized"`    // 401 answers
	Expiries       int           `json:"expiries"`        // cookies that were presented after they expired
	Logins         int           `json:"logins"`          // every login
	Relogins       int           `json:"relogins"`        // logins after an account's first
	NeedlessLogins int           `json:"needless_logins"` // logins while the account's latest cookie was still valid
	Unrenewed      int           `json:"unrenewed"`       // accounts whose latest cookie was found expired and not renewed (yet)
	Bans           int           `json:"bans"`            // bans imposed
	Banned         int           `json:"banned"`          // 429 answers to banned accounts (not in TooMany)
	Deaths         int           `json:"deaths"`          // accounts disabled for good
	Disabled       int           `json:"disabled"`        // 401 answers to cookies of disabled accounts
	RefusedLogins  int           `json:"refused_logins"`  // logins of disabled accounts (403)
	MinSlack       time.Duration `json:"min_slack_ns"`    // closest request to the previous use of its account (served or refused), minus the interval
	HaveSlack      bool          `json:"have_slack"`      // MinSlack is set
}

// newSite builds the site of cfg: its link graph and its accounts.
func newSite(cfg siteConfig) *site {
	s := &site{
		cfg:      cfg,
		now:      time.Now,
		accounts: make(map[string]*accountState, len(cfg.Accounts)),
		sessions: map[string]*session{},
		hosts:    map[string]time.Time{},
		served:   make([]int, cfg.Pages),
		links:    make([][]int, cfg.Pages),
	}
	rnd := mrand.New(mrand.NewPCG(cfg.Seed, 0x5eed))
	for n := range s.links {
		for _, child := range []int{2*n + 1, 2*n + 2} {
			if child < cfg.Pages {
				s.links[n] = append(s.links[n], child)
			}
		}
		for len(s.links[n]) < cfg.Links {
			s.links[n] = append(s.links[n], rnd.IntN(cfg.Pages))
		}
	}
	for _, a := range cfg.Accounts {
		s.accounts[a.ID] = &accountState{siteAccount: a}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /page/{n}", s.page)
	s.mux.HandleFunc("POST /login", s.login)
	return s
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// capacity is the most pages the site could have served from from to to:
// for each account, the time it was neither banned nor disabled, divided
// by its interval; or what the host limit allows, when that is less.
func (s *site) capacity(from, to time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pages float64
	for _, a := range s.accounts {
		off := time.Duration(0)
		for _, b := range a.bans {
			off += b.overlap(from, to)
		}
		if !a.deadSince.IsZero() {
			off += period{a.deadSince, to}.overlap(from, to)
		}
		pages += max(to.Sub(from)-off, 0).Seconds() / a.Interval.Seconds()
	}
	if s.cfg.HostRate > 0 {
		pages = min(pages, s.cfg.HostRate*to.Sub(from).Seconds())
	}
	return pages
}

// dead returns the IDs of the accounts disabled so far, sorted.
func (s *site) dead() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, a := range s.accounts {
		if !a.deadSince.IsZero() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// hostAllows counts a page for host when the host limit allows it now,
// GCRA-wise: the host's theoretical arrival time moves on by one emission
// interval per page, and may run ahead of now by the burst (plus the
// tolerance). It returns how long until it would allow one otherwise. The
// caller holds s.mu.
func (s *site) hostAllows(host string, now time.Time) (bool, time.Duration) {
	if s.cfg.HostRate <= 0 {
		return true, 0
	}
	emission := time.Duration(float64(time.Second) / s.cfg.HostRate)
	tat := s.hosts[host]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(emission)
	if ahead := next.Sub(now) - time.Duration(s.cfg.HostBurst)*emission; ahead > s.cfg.Tolerance {
		return false, ahead
	}
	s.hosts[host] = next
	return true, 0
}

// snapshot returns the score so far.
func (s *site) snapshot() siteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for _, a := range s.accounts {
		if a.current != nil && a.current.expired {
			st.Unrenewed++
		}
	}
	return st
}

// page serves GET /page/{n}: 401 without a valid cookie or for a disabled
// account, 429 while the account is banned or when it is used too soon,
// else the page with its links.
func (s *site) page(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= s.cfg.Pages {
		http.NotFound(w, r)
		return
	}
	c, err := r.Cookie(cookieName)
	s.mu.Lock()
	now := s.now()
	var sess *session
	if err == nil {
		sess = s.sessions[c.Value]
	}
	switch {
	case sess == nil:
		s.stats.Unauthorized++
		s.mu.Unlock()
		http.Error(w, "login required", http.StatusUnauthorized)
		return
	case !sess.account.deadSince.IsZero():
		s.stats.Unauthorized++
		s.stats.Disabled++
		s.mu.Unlock()
		http.Error(w, "account disabled", http.StatusUnauthorized)
		return
	case !now.Before(sess.expires):
		s.stats.Unauthorized++
		if !sess.expired {
			sess.expired = true
			s.stats.Expiries++
		}
		s.mu.Unlock()
		http.Error(w, "session expired", http.StatusUnauthorized)
		return
	}
	acc := sess.account
	if n := len(acc.bans); n > 0 && now.Before(acc.bans[n-1].to) {
		s.stats.Banned++
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(acc.bans[n-1].to.Sub(now).Seconds()))))
		http.Error(w, "banned", http.StatusTooManyRequests)
		return
	}
	var granted time.Time
	if ms, err := strconv.ParseInt(r.Header.Get("X-Pool-Granted"), 10, 64); err == nil {
		granted = time.UnixMilli(ms)
	}
	if !acc.lastUse.IsZero() {
		gap := now.Sub(acc.lastUse)
		if slack := gap - acc.Interval; !s.stats.HaveSlack || slack < s.stats.MinSlack {
			s.stats.MinSlack, s.stats.HaveSlack = slack, true
		}
		if gap < acc.Interval-s.cfg.Tolerance {
			s.stats.TooMany++
			if !granted.IsZero() && !acc.lastGrant.IsZero() && granted.Sub(acc.lastGrant) >= acc.Interval {
				s.stats.TooManyLate++
			}
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil((acc.Interval - gap).Seconds()))))
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
	}
	if ok, wait := s.hostAllows(r.Host, now); !ok {
		s.stats.TooMany++
		s.stats.TooManyHost++
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		http.Error(w, "too many requests from your host", http.StatusTooManyRequests)
		return
	}
	acc.lastUse, acc.lastGrant = now, granted
	acc.served++
	if acc.BanEvery > 0 && acc.served%acc.BanEvery == 0 {
		acc.bans = append(acc.bans, period{now, now.Add(acc.BanFor)})
		s.stats.Bans++
	}
	if acc.DeadAfter > 0 && acc.served == acc.DeadAfter {
		acc.deadSince = now
		s.stats.Deaths++
	}
	s.stats.Served++
	s.served[n]++
	switch s.served[n] {
	case 1:
		s.stats.Distinct++
	case 2:
		s.stats.FetchedTwice++
	}
	s.mu.Unlock()

	var b strings.Builder
	fmt.Fprintf(&b, "<html><body><h1>Page %d</h1>\n", n)
	for _, l := range s.links[n] {
		fmt.Fprintf(&b, "<a href=\"/page/%d\">page %d</a>\n", l, l)
	}
	b.WriteString("</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// login serves POST /login: after the login delay, a new cookie for the
// account, valid for its cookie lifetime; 403 for a disabled account.
func (s *site) login(w http.ResponseWriter, r *http.Request) {
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	s.mu.Lock()
	acc := s.accounts[user]
	dead := acc != nil && !acc.deadSince.IsZero()
	if dead {
		s.stats.RefusedLogins++
	}
	s.mu.Unlock()
	if acc == nil || acc.Password != password {
		http.Error(w, "wrong user or password", http.StatusForbidden)
		return
	}
	if dead {
		http.Error(w, "account disabled", http.StatusForbidden)
		return
	}
	if s.cfg.LoginDelay > 0 {
		t := time.NewTimer(s.cfg.LoginDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the client gave up: no cookie issued
		}
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	value := hex.EncodeToString(token)

	s.mu.Lock()
	now := s.now()
	acc.logins++
	s.stats.Logins++
	if acc.logins > 1 {
		s.stats.Relogins++
		if acc.current != nil && now.Before(acc.current.expires) {
			s.stats.NeedlessLogins++
		}
	}
	sess := &session{account: acc, expires: now.Add(acc.CookieTTL)}
	acc.current = sess
	s.sessions[value] = sess
	s.mu.Unlock()

	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    value,
		Path:     "/",
		Expires:  sess.expires,
		HttpOnly: true,
	})
	w.WriteHeader(http.StatusNoContent)
}
