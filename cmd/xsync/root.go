package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redisxsync/xsync"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed
	exitUsage  = 2 // the command line is wrong
)

// defaultURL is the server when neither --url nor XSYNC_URL names one.
const defaultURL = "redis://127.0.0.1:6379/0"

// env is the outside world of one run.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// app holds the global flags and the client of one run.
type app struct {
	env
	ctx     context.Context
	url     string
	addrs   []string // Cluster seed nodes, or the Sentinels with masterName
	master  string
	cluster bool
	prefix  string
	db      int
	dbSet   bool
	json    bool
	client  *xsync.Client
}

// failure marks an error of the operation (exit 1); any other error that
// reaches run is one of usage (exit 2).
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

// failed marks err as a failed operation; usage errors pass as they are,
// and so do the library's errors for bad input (a pool name with a brace,
// an empty key), which are usage errors too.
func failed(err error) error {
	var u usageError
	switch {
	case err == nil || errors.As(err, &u):
		return err
	case errors.Is(err, xsync.ErrInvalidOptions), errors.Is(err, xsync.ErrInvalidKey),
		errors.Is(err, xsync.ErrInvalidContainer), errors.Is(err, xsync.ErrInvalidTTL):
		return usageError{err.Error()}
	}
	return failure{err}
}

// usageError is a bad command line found by a verb itself.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e, ctx: ctx}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var f failure
	if errors.As(err, &f) {
		fmt.Fprintln(e.stderr, oneLine(err))
		return exitFailed
	}
	fmt.Fprintln(e.stderr, oneLine(err))
	fmt.Fprint(e.stderr, "\n"+cmd.UsageString())
	return exitUsage
}

// oneLine is err as the one line xsync prints: "xsync: ..." (or "xsync
// pool ls: ..." for a verb's usage).
func oneLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	if !strings.HasPrefix(msg, "xsync: ") && !strings.HasPrefix(msg, "xsync ") {
		msg = "xsync: " + msg
	}
	return msg
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "xsync",
		Short: "Inspect and administer xsync's pools and locks in Redis",
		Long: "xsync inspects and administers what the xsync library keeps in Redis:\n" +
			"pools of rate-limited containers, and locks.\n\n" +
			"The server is --url, else $XSYNC_URL, else " + defaultURL + ".\n" +
			"Exit status: 0 success, 1 failed operation, 2 bad usage.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          needVerb,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "Redis URL, redis://[user:pass@]host:port/db or rediss:// (default $XSYNC_URL, else "+defaultURL+")")
	pf.StringSliceVar(&a.addrs, "addrs", nil, "Redis Cluster seed nodes, or the Sentinels with --master-name: host:port,host:port (instead of --url)")
	pf.StringVar(&a.master, "master-name", "", "Sentinel: the name of the monitored master (with --addrs)")
	pf.BoolVar(&a.cluster, "cluster", false, "Redis Cluster (implied by several --addrs without --master-name)")
	pf.StringVar(&a.prefix, "prefix", "xsync", "the KeyPrefix of the xsync clients to inspect")
	pf.IntVar(&a.db, "db", 0, "the DB of the pools and locks (default: the URL's)")
	pf.BoolVar(&a.json, "json", false, "print JSON lines instead of tables")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.dbSet = cmd.Flags().Changed("db")
		if a.db < 0 {
			return usagef("--db %d: want 0 or more", a.db)
		}
		return nil
	}
	root.AddCommand(a.poolCommand(), a.poolsCommand(), a.lockCommand(), a.topCommand())
	return root
}

// needVerb is the RunE of the commands that only group verbs.
func needVerb(cmd *cobra.Command, args []string) error {
	var verbs []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			verbs = append(verbs, c.Name())
		}
	}
	if len(args) == 0 {
		return usagef("%s: missing verb (%s)", cmd.CommandPath(), strings.Join(verbs, ", "))
	}
	return usagef("%s: unknown verb %q (want %s)", cmd.CommandPath(), args[0], strings.Join(verbs, ", "))
}

// positional checks the arguments of a verb against their names: the
// last may end in "..." (one or more) or be in [brackets] (optional).
func positional(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		var required []string
		last := names[len(names)-1]
		for _, n := range names {
			if !strings.HasPrefix(n, "[") {
				required = append(required, strings.TrimSuffix(n, "..."))
			}
		}
		if len(args) < len(required) {
			return usagef("%s: missing %s", cmd.CommandPath(), strings.Join(required[len(args):], " "))
		}
		if len(args) > len(names) && !strings.HasSuffix(last, "...") {
			return usagef("%s: unexpected argument %q", cmd.CommandPath(), args[len(names)])
		}
		return nil
	}
}

// connect returns the client of the run, connected on first use.
func (a *app) connect() (*xsync.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	if len(a.addrs) > 0 || a.master != "" || a.cluster {
		return a.connectTopology()
	}
	raw := a.url
	if raw == "" {
		raw = a.getenv("XSYNC_URL")
	}
	if raw == "" {
		raw = defaultURL
	}
	if a.dbSet {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, usagef("--url: not a URL")
		}
		u.Path = "/" + strconv.Itoa(a.db)
		raw = u.String()
	}
	// The DB of the pools and locks is Options.DB: the URL's, or --db.
	c, err := xsync.New(xsync.Options{URL: raw, KeyPrefix: a.prefix, DB: a.dbOf()})
	if errors.Is(err, xsync.ErrInvalidOptions) {
		return nil, usageError{err.Error()}
	}
	if err != nil {
		return nil, failure{err}
	}
	a.client = c
	return c, nil
}

// connectTopology connects to a Sentinel set or a Redis Cluster named by
// --addrs, --master-name and --cluster; the library refuses contradictory
// flags (with --url, a DB on Cluster) as invalid options: usage errors.
func (a *app) connectTopology() (*xsync.Client, error) {
	if a.url != "" {
		return nil, usagef("give --url or --addrs, not both")
	}
	if len(a.addrs) == 0 {
		return nil, usagef("--master-name and --cluster need --addrs")
	}
	c, err := xsync.New(xsync.Options{Addrs: a.addrs, MasterName: a.master, Cluster: a.cluster,
		KeyPrefix: a.prefix, DB: a.db})
	if errors.Is(err, xsync.ErrInvalidOptions) {
		return nil, usageError{err.Error()}
	}
	if err != nil {
		return nil, failure{err}
	}
	a.client = c
	return c, nil
}

func (a *app) close() {
	if a.client != nil {
		_ = a.client.Close(context.Background())
	}
}

// pool returns the pool name, failing when it does not exist.
func (a *app) pool(name string) (*xsync.Pool, error) {
	c, err := a.connect()
	if err != nil {
		return nil, err
	}
	p := c.Pool(name)
	ok, err := p.Exists(a.ctx)
	if err != nil {
		return nil, failed(err)
	}
	if !ok {
		return nil, failure{fmt.Errorf("no pool %q under prefix %q (db %d); `xsync pools` lists them", name, a.prefix, a.dbOf())}
	}
	return p, nil
}

// dbOf is the DB the run works on, for messages.
func (a *app) dbOf() int {
	if a.dbSet {
		return a.db
	}
	raw := a.url
	if raw == "" {
		raw = a.getenv("XSYNC_URL")
	}
	if u, err := url.Parse(raw); err == nil {
		if n, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/")); err == nil {
			return n
		}
	}
	return 0
}
