package main

// -metrics: xsync's OpenTelemetry metrics, served to Prometheus. Each
// process of the crawl (the coordinator and every worker process) has its
// own xsync client, so its own metrics: each worker serves them on a
// loopback port of its own, and the coordinator's /metrics gathers them
// all, every series labelled with the process it came from (proc="0" is
// the coordinator, proc="1".. the workers).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// promMetrics is one process's meter provider, read by a Prometheus
// registry of its own.
type promMetrics struct {
	reg      *prometheus.Registry
	provider *sdkmetric.MeterProvider
}

func newPromMetrics() (*promMetrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	return &promMetrics{reg: reg, provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))}, nil
}

func (m *promMetrics) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.provider.Shutdown(ctx)
}

// metricsServer serves /metrics on ln until close.
type metricsServer struct {
	srv    *http.Server
	served chan struct{}
}

func serveMetrics(ln net.Listener, h http.Handler) *metricsServer {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	s := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, served: make(chan struct{})}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s
}

func (s *metricsServer) close() {
	_ = s.srv.Close()
	<-s.served
}

// workerMetrics is what a worker process serves: its own registry.
func (m *promMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// gatherer is the coordinator's /metrics: its own metrics and those of
// every worker process that has said where it serves them.
type gatherer struct {
	own    *promMetrics
	client *http.Client

	mu      sync.Mutex
	workers map[int]string // proc -> host:port of its metrics
}

func newGatherer(own *promMetrics) *gatherer {
	return &gatherer{own: own, client: &http.Client{Timeout: 2 * time.Second}, workers: map[int]string{}}
}

// addWorker records where worker process proc serves its metrics.
func (g *gatherer) addWorker(proc int, addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.workers[proc] = addr
}

// ServeHTTP writes every process's metric families, merged by name, in
// Prometheus's text format. A worker that does not answer is left out.
func (g *gatherer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	own, err := g.own.reg.Gather()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	byName := map[string]*dto.MetricFamily{}
	merge(byName, own, "0")
	g.mu.Lock()
	workers := make(map[int]string, len(g.workers))
	for p, a := range g.workers {
		workers[p] = a
	}
	g.mu.Unlock()
	for proc, addr := range workers {
		fams, err := g.scrape(r.Context(), addr)
		if err != nil {
			continue // the worker has exited, or is busy: its series are absent
		}
		list := make([]*dto.MetricFamily, 0, len(fams))
		for _, f := range fams {
			list = append(list, f)
		}
		merge(byName, list, strconv.Itoa(proc))
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", string(expfmt.FmtText))
	enc := expfmt.NewEncoder(w, expfmt.FmtText)
	for _, n := range names {
		if err := enc.Encode(byName[n]); err != nil {
			return
		}
	}
}

func (g *gatherer) scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	var p expfmt.TextParser
	return p.TextToMetricFamilies(resp.Body)
}

// merge adds fams to byName, each series labelled proc.
func merge(byName map[string]*dto.MetricFamily, fams []*dto.MetricFamily, proc string) {
	name := "proc"
	for _, f := range fams {
		for _, m := range f.Metric {
			v := proc
			m.Label = append(m.Label, &dto.LabelPair{Name: &name, Value: &v})
		}
		if have, ok := byName[f.GetName()]; ok {
			have.Metric = append(have.Metric, f.Metric...)
		} else {
			byName[f.GetName()] = f
		}
	}
}

// listenMetrics opens the coordinator's -metrics address.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	return ln, nil
}
