package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// bin is the xsync binary under test, built once by TestMain.
var bin string

// TestMain builds the command, runs the tests against it, and fails if a
// test left a goroutine behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xsync-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "xsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with args (after --prefix prefix) against the test
// Redis, stdin as its input.
func cli(t *testing.T, prefix, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--prefix", prefix}, args...)...)
	cmd.Env = append(os.Environ(), "XSYNC_URL=redis://"+testredis.Addr(t)+"/0")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("xsync %s: %v", strings.Join(args, " "), err)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// want fails t unless r exited with code.
func (r result) want(t *testing.T, code int, what string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

func testPrefix(t *testing.T) string {
	return fmt.Sprintf("xsynccli-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

// client is a library client of the test Redis under prefix, closed at the
// end of the test.
func client(t *testing.T, prefix string) *xsync.Client {
	t.Helper()
	c, err := xsync.New(xsync.Options{Addr: testredis.Addr(t), KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// jsonLines decodes every line of s into a T.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}

// eventually polls cond, an observation of Redis, until it holds or the
// deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond) // ok: polls an observation with a deadline
	}
}

func TestCLI_PutLsStatsCooldownRm(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	p := client(t, prefix).Pool("accounts")

	cli(t, prefix, "", "pool", "put", "accounts", "--id", "alice", "--interval", "2s", "--data", "sid=abc").want(t, 0, "put alice")
	cli(t, prefix, "", "pool", "put", "accounts", "--id", "bob", "--interval", "1m", "--ttl", "24h").want(t, 0, "put bob")
	c, err := p.Get(ctx, "alice")
	if err != nil || c.Interval != 2*time.Second || c.Data != "sid=abc" {
		t.Fatalf("alice as put: %+v, %v", c, err)
	}

	ls := cli(t, prefix, "", "pool", "ls", "accounts").want(t, 0, "ls")
	for _, want := range []string{"ID", "NEXT", "alice", "bob", "ready", "in 23h59m", "sid=abc", "never"} {
		if !strings.Contains(ls.stdout, want) {
			t.Errorf("ls has no %q:\n%s", want, ls.stdout)
		}
	}
	if got := jsonLines[xsync.Container](t, cli(t, prefix, "", "--json", "pool", "ls", "accounts").want(t, 0, "ls --json").stdout); len(got) != 2 || got[0].ID != "alice" || got[1].TTL != 24*time.Hour {
		t.Fatalf("ls --json = %+v", got)
	}

	cli(t, prefix, "", "pool", "cooldown", "accounts", "bob", "10m").want(t, 0, "cooldown")
	if c, err := p.Get(ctx, "bob"); err != nil || time.Until(c.NextAvailable) < 9*time.Minute {
		t.Fatalf("bob after a 10m cooldown: %+v, %v", c, err)
	}
	if ls := cli(t, prefix, "", "pool", "ls", "accounts").want(t, 0, "ls"); !strings.Contains(ls.stdout, "in 9m5") && !strings.Contains(ls.stdout, "in 10m") {
		t.Errorf("ls after the cooldown does not say bob is ready in about 10m:\n%s", ls.stdout)
	}

	type stats struct {
		Pool                  string
		Total, Ready, Cooling int
	}
	st := jsonLines[stats](t, cli(t, prefix, "", "--json", "pool", "stats", "accounts").want(t, 0, "stats").stdout)
	if len(st) != 1 || st[0] != (stats{"accounts", 2, 1, 1}) {
		t.Fatalf("stats --json = %+v, want 2 total, 1 ready, 1 cooling", st)
	}
	if s := cli(t, prefix, "", "pools").want(t, 0, "pools"); !strings.Contains(s.stdout, "accounts") {
		t.Fatalf("pools:\n%s", s.stdout)
	}

	rm := cli(t, prefix, "", "pool", "rm", "accounts", "bob", "nobody").want(t, 1, "rm of one that is and one that is not")
	if !strings.Contains(rm.stderr, `"nobody"`) || !strings.Contains(rm.stdout, "removed 1") {
		t.Errorf("rm says:\n%s%s", rm.stdout, rm.stderr)
	}
	if _, err := p.Get(ctx, "bob"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("bob after rm: %v", err)
	}
}

func TestCLI_ExportThenImportRoundTripsAPool(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := client(t, prefix)
	src := c.Pool("src")
	for i := range 20 {
		if err := src.Put(ctx, xsync.Container{ID: fmt.Sprintf("acct-%02d", i), Interval: time.Duration(i+1) * time.Second,
			TTL: time.Duration(i) * time.Hour, Data: fmt.Sprintf(`{"cookie":"c%d","note":"tab\there"}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Cooldown(ctx, "acct-03", time.Hour); err != nil {
		t.Fatal(err)
	}
	exported := cli(t, prefix, "", "pool", "export", "src").want(t, 0, "export")
	file := filepath.Join(t.TempDir(), "src.jsonl")
	if err := os.WriteFile(file, []byte(exported.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, prefix, "", "pool", "import", "dst", file).want(t, 0, "import from a file")
	cli(t, prefix, exported.stdout, "pool", "import", "dst2").want(t, 0, "import from stdin")

	want, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dst", "dst2"} {
		got, err := c.Pool(name).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d containers, want %d", name, len(got), len(want))
		}
		for i := range want {
			a, b := want[i], got[i]
			if a.ID != b.ID || !a.CreatedAt.Equal(b.CreatedAt) || a.TTL != b.TTL || a.Interval != b.Interval || a.Data != b.Data {
				t.Errorf("%s: %+v\nwant %+v", name, b, a)
			}
		}
		// The cooldown came along (to the millisecond of the export).
		if b := got[3]; b.NextAvailable.Before(want[3].NextAvailable.Add(-time.Millisecond)) {
			t.Errorf("%s: acct-03 ready at %v, want %v as in src", name, b.NextAvailable, want[3].NextAvailable)
		}
	}
}

func TestCLI_ImportReportsRejectsAndWritesNothingUnlessPartial(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := client(t, prefix)
	in := strings.Join([]string{
		`{"id":"good-1","interval_ms":1000}`,
		`{"id": 7, "ct": 1733130000000.0, "ttl_ms": null, "containers": [{"sid": "x"}], "usage_count": 4}`, // Python's
		`{"id":"neg","ttl_ms":-5}`,
		`not json`,
		``,
		`{"interval_ms":1000}`,
		`{"id":"good-1"}`,
	}, "\n")
	r := cli(t, prefix, in, "pool", "import", "imp").want(t, 1, "import of a bad file")
	for _, want := range []string{"stdin:3: ", "negative TTL", "stdin:4: ", "stdin:6: ", "empty ID", "stdin:7: ", "line 1 already", "nothing imported"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the report has no %q:\n%s", want, r.stderr)
		}
	}
	if ok, err := c.Pool("imp").Exists(ctx); err != nil || ok {
		t.Fatalf("a rejected import wrote the pool: Exists = %v, %v", ok, err)
	}

	r = cli(t, prefix, in, "pool", "import", "imp", "--partial").want(t, 1, "partial import")
	if !strings.Contains(r.stdout, "imported 2 containers") {
		t.Errorf("partial import says:\n%s", r.stdout)
	}
	got, err := c.Pool("imp").List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "7" || got[0].Data != `[{"sid":"x"}]` || got[1].ID != "good-1" || got[0].UsageCount != 0 {
		t.Fatalf("after the partial import: %+v", got)
	}
	cli(t, prefix, "", "pool", "import", "imp", filepath.Join(t.TempDir(), "missing.jsonl")).want(t, 1, "import of a missing file")
}

func TestCLI_LockShowAndLsWhileHeld(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := client(t, prefix)
	lease, err := c.Lock(ctx, []string{"login:alice"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	show := cli(t, prefix, "", "lock", "show", "login:alice").want(t, 0, "lock show")
	for _, want := range []string{lease.Token(), "fence:", fmt.Sprint(lease.Fence("login:alice")), "59s"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("lock show has no %q:\n%s", want, show.stdout)
		}
	}
	type row struct {
		Key   string
		Held  bool
		Token string
		TTLMs int64 `json:"ttl_ms"`
		Fence int64
	}
	rows := jsonLines[row](t, cli(t, prefix, "", "--json", "lock", "ls").want(t, 0, "lock ls --json").stdout)
	if len(rows) != 1 || rows[0].Key != "login:alice" || !rows[0].Held || rows[0].Token != lease.Token() || rows[0].TTLMs <= 50000 {
		t.Fatalf("lock ls --json = %+v", rows)
	}
	if ls := cli(t, prefix, "", "lock", "ls").want(t, 0, "lock ls"); !strings.Contains(ls.stdout, "login:alice") || !strings.Contains(ls.stdout, "HOLDER") {
		t.Fatalf("lock ls:\n%s", ls.stdout)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := cli(t, prefix, "", "lock", "ls").want(t, 0, "lock ls with none held"); ls.stdout != "" || !strings.Contains(ls.stderr, "no locks held") {
		t.Fatalf("lock ls of none:\n%s%s", ls.stdout, ls.stderr)
	}
	if show := cli(t, prefix, "", "lock", "show", "login:alice").want(t, 0, "show of a released lock"); !strings.Contains(show.stdout, "free") {
		t.Fatalf("show of a released lock:\n%s", show.stdout)
	}
	if r := cli(t, prefix, "", "lock", "show", "never-locked").want(t, 1, "show of a key never locked"); !strings.Contains(r.stderr, `no lock "never-locked"`) {
		t.Fatalf("show of a key never locked:\n%s", r.stderr)
	}
}

func TestCLI_LockBreakWakesTheWaiter(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	holder, waiter := client(t, prefix), client(t, prefix)
	held, err := holder.Lock(ctx, []string{"job"}, xsync.TTL(time.Minute), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	waiting := waiter.LockAsync(wctx, []string{"job"})
	eventually(t, 5*time.Second, "the waiter queued", func() bool {
		info, err := holder.LockInfo(ctx, "job")
		return err == nil && info.Waiting == 1
	})

	r := cli(t, prefix, "", "lock", "break", "job").want(t, 0, "lock break")
	if !strings.Contains(r.stdout, "broke lock job") || !strings.Contains(r.stdout, "woken") {
		t.Errorf("lock break says:\n%s", r.stdout)
	}
	next, err := waiting.Wait(wctx)
	if err != nil {
		t.Fatalf("the waiter after the break: %v", err)
	}
	if next.Fence("job") != held.Fence("job")+1 {
		t.Errorf("fence %d after %d", next.Fence("job"), held.Fence("job"))
	}
	if err := held.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Errorf("the broken holder's Refresh: %v, want ErrLockNotHeld", err)
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, prefix, "", "lock", "break", "job").want(t, 1, "break of a free lock"); !strings.Contains(r.stderr, "not held") {
		t.Errorf("break of a free lock says:\n%s", r.stderr)
	}
}

func TestCLI_MissingPoolSaysSo(t *testing.T) {
	prefix := testPrefix(t)
	for _, args := range [][]string{
		{"pool", "ls", "ghost"},
		{"pool", "stats", "ghost"},
		{"pool", "export", "ghost"},
		{"pool", "cooldown", "ghost", "x", "1m"},
		{"pool", "rm", "ghost", "x"},
	} {
		r := cli(t, prefix, "", args...).want(t, 1, strings.Join(args, " "))
		if !strings.Contains(r.stderr, `no pool "ghost"`) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s says:\n%s", strings.Join(args, " "), r.stderr)
		}
	}
	cli(t, prefix, "", "pool", "put", "real", "--id", "a").want(t, 0, "put")
	if r := cli(t, prefix, "", "pool", "cooldown", "real", "ghost", "1m").want(t, 1, "cooldown of a missing container"); !strings.Contains(r.stderr, `no container "ghost"`) {
		t.Errorf("cooldown of a missing container says:\n%s", r.stderr)
	}
	if r := cli(t, prefix, "", "pools").want(t, 0, "pools"); !strings.Contains(r.stdout, "real") || strings.Contains(r.stdout, "ghost") {
		t.Errorf("pools:\n%s", r.stdout)
	}
}

// --db, or the URL's DB, is where the pools and locks are.
func TestCLI_DBFromTheFlagOrTheURL(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := client(t, prefix)
	cli(t, prefix, "", "--db", "3", "pool", "put", "on3", "--id", "a").want(t, 0, "put on DB 3")
	if ok, err := c.Pool("on3", xsync.OnDB(3)).Exists(ctx); err != nil || !ok {
		t.Fatalf("the pool put with --db 3 is not on DB 3: %v, %v", ok, err)
	}
	if r := cli(t, prefix, "", "pools").want(t, 0, "pools of DB 0"); strings.Contains(r.stdout, "on3") {
		t.Errorf("DB 0 lists the pool of DB 3:\n%s", r.stdout)
	}
	for _, args := range [][]string{
		{"--db", "3", "pools"},
		{"--url", "redis://" + testredis.Addr(t) + "/3", "pools"},
	} {
		if r := cli(t, prefix, "", args...).want(t, 0, strings.Join(args, " ")); !strings.Contains(r.stdout, "on3") {
			t.Errorf("xsync %s does not list the pool of DB 3:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

func TestCLI_BadUsageExits2WithUsage(t *testing.T) {
	prefix := testPrefix(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"pool"},
		{"pool", "frob", "x"},
		{"pool", "ls"},
		{"pool", "ls", "a", "b"},
		{"pool", "put", "p"}, // no --id
		{"pool", "put", "p", "--id", "x", "--ttl", "-1s"}, // negative TTL
		{"pool", "put", "p", "--id", "x", "--interval", "soon"},
		{"pool", "cooldown", "p", "x", "soon"},
		{"pool", "stats", "p", "--watch", "-1s"},
		{"--bogus", "pools"},
		{"--db", "-1", "pools"},
		{"--url", "http://example.com", "pools"},
		{"lock", "show"},
		{"pool", "ls", "a{b}"}, // the library refuses braces in a pool name
		{"pool", "put", "a{b}", "--id", "x"},
		{"--url", "redis://" + testredis.Addr(t), "--addrs", testredis.Addr(t), "pools"}, // two servers named
		{"--cluster", "pools"},                 // a Cluster without --addrs
		{"--master-name", "mymaster", "pools"}, // a Sentinel master without Sentinels
		{"--addrs", testredis.Addr(t), "--cluster", "--master-name", "m", "pools"}, // Cluster and Sentinel
	} {
		r := cli(t, prefix, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "Usage:") || !strings.HasPrefix(r.stderr, "xsync") {
			t.Errorf("xsync %s: exit %d, want 2 with usage; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := cli(t, prefix, "", "--help").want(t, 0, "--help"); !strings.Contains(r.stdout, "pool") {
		t.Errorf("--help:\n%s", r.stdout)
	}
}

func TestCLI_UnreachableRedisIsOneLineNamingTheAddressNotThePassword(t *testing.T) {
	r := cli(t, testPrefix(t), "", "--url", "redis://ops:hunter2@127.0.0.1:1/0", "pools").want(t, 1, "unreachable Redis")
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestCLI_TopOnceFitsEightyColumns(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := client(t, prefix)
	if err := c.Pool("proxies").Put(ctx, xsync.Container{ID: "p1", Interval: time.Minute}, xsync.Container{ID: "p2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pool("proxies").AskOne(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := c.Lock(ctx, []string{"a-rather-long-lock-key-name-that-goes-on-and-on-and-on"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lease.Release(ctx) }()
	r := cli(t, prefix, "", "top", "--once").want(t, 0, "top --once")
	for _, want := range []string{"POOL", "proxies", "KEY", "a-rather-long", "HOLDER", "WAITING"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("top has no %q:\n%s", want, r.stdout)
		}
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if utf8.RuneCountInString(line) > 80 {
			t.Errorf("line of %d columns: %q", utf8.RuneCountInString(line), line)
		}
	}
}

// top redraws until it reads q; stats --watch prints a line per tick
// until interrupted; both exit 0.
func TestCLI_TopQuitsOnQAndWatchOnInterrupt(t *testing.T) {
	prefix := testPrefix(t)
	cli(t, prefix, "", "pool", "put", "w", "--id", "a").want(t, 0, "put")
	env := append(os.Environ(), "XSYNC_URL=redis://"+testredis.Addr(t)+"/0")

	top := exec.Command(bin, "--prefix", prefix, "top")
	top.Env = env
	stdin, err := top.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := top.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for frames := 0; frames < 2 && sc.Scan(); {
		if strings.Contains(sc.Text(), "xsync top") {
			frames++
		}
	}
	if _, err := stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // drain
	}
	if err := top.Wait(); err != nil {
		t.Fatalf("top after q: %v", err)
	}

	watch := exec.Command(bin, "--prefix", prefix, "pool", "stats", "w", "--watch", "50ms")
	watch.Env = env
	out, err = watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(out)
	lines := 0
	for lines < 4 && sc.Scan() {
		lines++
	}
	if lines != 4 {
		t.Fatalf("--watch printed %d lines before it stopped", lines)
	}
	if err := watch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("stats --watch after an interrupt: %v", err)
	}
}

// The waiters of a process are counted by pool stats and top, which run in
// another: the WAITING column and "waiting" in JSON; 0 once they are
// cancelled. Retired containers are not cooling.
func TestCLI_StatsAndTopShowTheWaitersOfOtherProcesses(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := client(t, prefix).Pool("accounts", xsync.Health(xsync.HealthPolicy{RetireAfter: 1}))
	if err := p.Put(ctx, xsync.Container{ID: "a", Interval: time.Hour}, xsync.Container{ID: "dead"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Cooldown(ctx, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := p.Report(ctx, "dead", xsync.Failed); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	var fs []*xsync.Future[xsync.Container]
	for range 3 {
		fs = append(fs, p.WaitAskOneAsync(wctx))
	}
	type stats struct {
		Total, Ready, Cooling, Retired, Waiting int
	}
	statsNow := func() stats {
		st := jsonLines[stats](t, cli(t, prefix, "", "--json", "pool", "stats", "accounts").want(t, 0, "stats --json").stdout)
		if len(st) != 1 {
			t.Fatalf("stats --json: %d lines", len(st))
		}
		return st[0]
	}
	var st stats
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st = statsNow(); st.Waiting == 3 || time.Now().After(deadline) {
			break
		}
	}
	if st != (stats{Total: 2, Ready: 0, Cooling: 1, Retired: 1, Waiting: 3}) {
		t.Fatalf("stats --json = %+v, want 2 total, 1 cooling, 1 retired, 3 waiting", st)
	}
	human := cli(t, prefix, "", "pool", "stats", "accounts").want(t, 0, "stats").stdout
	lines := strings.Split(strings.TrimSpace(human), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "WAITING") || !strings.Contains(lines[0], "RETIRED") {
		t.Fatalf("stats:\n%s", human)
	}
	if f := strings.Fields(lines[1]); len(f) < 6 || f[0] != "accounts" || f[4] != "1" || f[5] != "3" {
		t.Fatalf("stats row %q: want 1 retired, 3 waiting", lines[1])
	}
	ls := cli(t, prefix, "", "pool", "ls", "accounts").want(t, 0, "ls")
	for _, line := range strings.Split(ls.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "dead" && f[1] != "retired" {
			t.Errorf("ls shows a retired container as %q, want retired: %q", f[1], line)
		}
	}
	if !strings.Contains(ls.stderr, "2 containers, 0 ready, 1 retired") {
		t.Errorf("ls footer: %q", ls.stderr)
	}
	top := cli(t, prefix, "", "top", "--once").want(t, 0, "top --once").stdout
	found := false
	for _, line := range strings.Split(top, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == "accounts" {
			found = f[5] == "3"
		}
		if utf8.RuneCountInString(line) > 80 {
			t.Errorf("top line of %d columns: %q", utf8.RuneCountInString(line), line)
		}
	}
	if !found || !strings.Contains(top, "WAITING") {
		t.Fatalf("top does not show 3 waiting for accounts:\n%s", top)
	}

	stop()
	for _, f := range fs {
		if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st = statsNow(); st.Waiting == 0 || time.Now().After(deadline) {
			break
		}
	}
	if st.Waiting != 0 {
		t.Fatalf("stats after the waiters were cancelled: %+v, want 0 waiting", st)
	}
}
