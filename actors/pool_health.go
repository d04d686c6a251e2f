package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/messages"
)

// reportOutcomes are pool_report's outcome arguments, by messages.PoolReport
// Outcome.
var reportOutcomes = [...]string{"s", "f", "b"}

// What pool_report answers about the container.
const (
	reportNotFound      = -1
	reportLive          = 0
	reportRetiredBefore = 1 // retired already: the report changed nothing
	reportRetiredNow    = 2
)

// reportReply is pool_report's answer.
type reportReply struct {
	state    int64
	next     time.Time
	failures int64
}

// runReport runs pool_report.
func runReport(ctx context.Context, cl redis.Scripter, k poolKeys, m *messages.PoolReport) (reportReply, error) {
	if m.Outcome < 0 || m.Outcome >= len(reportOutcomes) {
		return reportReply{}, fmt.Errorf("pool_report: outcome %d", m.Outcome)
	}
	res, err := registry.Get("pool_report").Run(ctx, cl, k.base, m.ID, reportOutcomes[m.Outcome],
		durUs(m.Backoff), durUs(m.MaxBackoff), m.RetireAfter).Int64Slice()
	if err != nil {
		return reportReply{}, err
	}
	if len(res) != 4 {
		return reportReply{}, fmt.Errorf("pool_report: %d replies", len(res))
	}
	return reportReply{state: res[1], next: time.UnixMicro(res[2]), failures: res[3]}, nil
}

// onReport applies a report. It wakes no waiter: a report makes nothing
// ready (a waiter timed for a container that a Blocked report cooled down
// learns its new time at its next try).
func (p *poolActor) onReport(ctx actor.Context, m *messages.PoolReport) {
	cl, keys, log := p.cfg.Client, p.keys, p.log
	serve(p, ctx, func(err error) *messages.PoolReportResult { return &messages.PoolReportResult{Err: err} },
		func(c context.Context) (*messages.PoolReportResult, error) {
			r, err := runReport(c, cl, keys, m)
			switch {
			case err != nil:
				return nil, p.wrap("report", err)
			case r.state == reportNotFound:
				return nil, p.notFound(m.ID)
			case r.state == reportRetiredNow:
				log.Info("pool container retired", zap.String("id", m.ID), zap.Int64("failures", r.failures))
			}
			return &messages.PoolReportResult{
				NextAvailable: r.next,
				Failures:      r.failures,
				Retired:       r.state != reportLive,
			}, nil
		})
}
