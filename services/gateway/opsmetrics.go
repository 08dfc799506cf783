package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
)

// What an operator watches, beside the services' own counters (runs by job and
// status, dead letters, notifications, the last success of each job): JetStream's
// state (messages per stream, replicas in step, each consumer's backlog and
// redeliveries), read at scrape time, and how many firms' part of each job is overdue,
// computed once a minute. Labels name streams, consumers and jobs, never a firm: the
// gateway's /metrics is open.

var (
	descStreamMsgs = prometheus.NewDesc("gstjobs_stream_messages", "Messages a JetStream stream holds.", []string{"stream"}, nil)
	descReplicas   = prometheus.NewDesc("gstjobs_stream_replicas", "Replicas a stream is configured with.", []string{"stream"}, nil)
	descCurrent    = prometheus.NewDesc("gstjobs_stream_replicas_current",
		"Replicas of a stream that are in step: its leader and the peers that are current (below gstjobs_stream_replicas: a NATS node is lost or behind).", []string{"stream"}, nil)
	descPending     = prometheus.NewDesc("gstjobs_consumer_pending", "Messages a consumer has not been given yet.", []string{"stream", "consumer"}, nil)
	descAckPending  = prometheus.NewDesc("gstjobs_consumer_ack_pending", "Messages a consumer was given and has not acked.", []string{"stream", "consumer"}, nil)
	descRedelivered = prometheus.NewDesc("gstjobs_consumer_redelivered", "Messages a consumer has had delivered more than once and not acked yet.", []string{"stream", "consumer"}, nil)
	descUp          = prometheus.NewDesc("gstjobs_jetstream_up", "1 when the gateway could read JetStream's state at this scrape.", nil, nil)
	descFirmsStale  = prometheus.NewDesc("gstjobs_job_firms_stale",
		"Firms (not paused) whose part of a job last succeeded longer ago than its alert threshold, or not at all in the last week, computed once a minute.", []string{"job"}, nil)
)

type opsCollector struct {
	g *Gateway

	mu    sync.Mutex
	stale map[string]int
}

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreamMsgs, descReplicas, descCurrent, descPending, descAckPending, descRedelivered, descUp, descFirmsStale} {
		ch <- d
	}
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	up := 1.0
	for _, name := range []string{bus.StreamJobs, bus.StreamEvents, bus.StreamDead} {
		s, err := c.g.cfg.JS.Stream(ctx, name)
		if err != nil {
			up = 0
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			up = 0
			continue
		}
		ch <- prometheus.MustNewConstMetric(descStreamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(info.Config.Replicas), name)
		current := 1
		if info.Cluster != nil {
			if info.Cluster.Leader == "" {
				current = 0
			}
			for _, p := range info.Cluster.Replicas {
				if p.Current && !p.Offline {
					current++
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(descCurrent, prometheus.GaugeValue, float64(current), name)
		if name == bus.StreamDead {
			continue
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(ci.NumPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(ci.NumAckPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(descRedelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), name, ci.Name)
		}
		if consumers.Err() != nil && consumers.Err() != jetstream.ErrEndOfData {
			up = 0
		}
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	c.mu.Lock()
	for job, n := range c.stale {
		ch <- prometheus.MustNewConstMetric(descFirmsStale, prometheus.GaugeValue, float64(n), job)
	}
	c.mu.Unlock()
}

// firmsStaleSQL counts, per job, the firms whose newest success is older than the
// job's alert threshold (or who had none in the last week, but had a part in a run),
// leaving out the firms that paused the job.
const firmsStaleSQL = `
SELECT j.name, count(*) FILTER (WHERE f.last IS NULL OR f.last < now() - make_interval(secs => j.stale_s))
FROM unnest($1::text[], $2::float8[]) AS j(name, stale_s)
CROSS JOIN LATERAL (
    SELECT tenant_id, max(finished_at) FILTER (WHERE status = 'success') AS last
    FROM job_run_tenants
    WHERE job_name = j.name AND finished_at > now() - interval '7 days'
    GROUP BY tenant_id
) f
WHERE NOT (j.name || '.' || f.tenant_id::text) = ANY($3::text[])
GROUP BY j.name`

// staleLoop recomputes the firms stale per job once a minute.
func (c *opsCollector) staleLoop(done <-chan struct{}) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		c.computeStale()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (c *opsCollector) computeStale() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var names []string
	var stale []float64
	for _, j := range catalog.All() {
		names, stale = append(names, j.Name), append(stale, j.StaleAfter.Seconds())
	}
	c.g.configs.mu.Lock()
	paused := make([]string, 0, len(c.g.configs.paused))
	for key := range c.g.configs.paused {
		paused = append(paused, key)
	}
	c.g.configs.mu.Unlock()
	rows, err := c.g.cfg.Pool.Query(ctx, firmsStaleSQL, names, stale, paused)
	if err != nil {
		c.g.log.Warn("cannot count the firms whose jobs are overdue", "err", err)
		return
	}
	defer rows.Close()
	out := map[string]int{}
	for _, n := range names {
		out[n] = 0
	}
	for rows.Next() {
		var job string
		var n int
		if err := rows.Scan(&job, &n); err != nil {
			return
		}
		out[job] = n
	}
	if rows.Err() != nil {
		return
	}
	c.mu.Lock()
	c.stale = out
	c.mu.Unlock()
}
