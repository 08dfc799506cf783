package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/singleflight"
)

// A dashboard's first frame is a snapshot of its viewer's cards and health. Building
// one reads the database and the buckets, so it is built once per viewer group (a
// firm, the operators) for every dashboard of the group that connects while nothing
// changes, and sent to each as the same prepared message.
//
// That is the snapshot the dashboard would have built itself. A dashboard registers
// for live frames before it asks for a snapshot (serveWS); every change the cards can
// show is told to the snapshots before, or as, its frame is sent (a status, result or
// config frame, under the hub's lock, as registrations are), or as it lands when it
// has no frame of its own (a change of the runs bucket, a row committed to audit_log):
// each makes every snapshot built before it stale. So a snapshot that is not stale
// holds every change whose frame the dashboard did not get. A snapshot is kept at most
// snapshotTTL, and dashboards that ask while one is being built wait for it.

// snapshotTTL bounds how long a snapshot is kept while nothing changes.
const snapshotTTL = time.Second

type snapshotCache struct {
	clock  clockwork.Clock
	gen    atomic.Uint64 // changes told so far
	flight singleflight.Group

	mu      sync.Mutex
	built   map[string]*snapshot // viewer key → its latest snapshot
	records *keptRecords         // the jobs' records the latest snapshots were built from
}

// keptRecords are jobRecords read when gen changes had been told.
type keptRecords struct {
	gen  uint64
	at   time.Time
	recs jobRecords
}

type snapshot struct {
	gen uint64 // changes told before it was begun
	at  time.Time
	msg *websocket.PreparedMessage
}

func newSnapshotCache(clock clockwork.Clock) *snapshotCache {
	return &snapshotCache{clock: clock, built: map[string]*snapshot{}}
}

// changed makes every snapshot built so far stale.
func (s *snapshotCache) changed() { s.gen.Add(1) }

// get is the viewer's group's snapshot: the one kept if it is not stale, else one
// built by build, once for every caller that asks while nothing changes.
func (s *snapshotCache) get(v Viewer, build func(context.Context, Viewer) ([]byte, error)) (*websocket.PreparedMessage, error) {
	key, gen := v.key(), s.gen.Load()
	s.mu.Lock()
	b := s.built[key]
	s.mu.Unlock()
	if b != nil && b.gen == gen && s.clock.Since(b.at) < snapshotTTL {
		return b.msg, nil
	}
	msg, err, _ := s.flight.Do(key+"@"+strconv.FormatUint(gen, 10), func() (any, error) {
		at := s.clock.Now()
		// Not the caller's context: the build is every waiting dashboard's.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		data, err := build(ctx, v)
		if err != nil {
			return nil, err
		}
		msg, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
		if err != nil {
			return nil, err
		}
		s.keep(key, &snapshot{gen: gen, at: at, msg: msg})
		return msg, nil
	})
	if err != nil {
		return nil, err
	}
	return msg.(*websocket.PreparedMessage), nil
}

// keep remembers a snapshot, and forgets those that are stale or too old.
func (s *snapshotCache) keep(key string, b *snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.built[key]; old == nil || old.gen <= b.gen {
		s.built[key] = b
	}
	if len(s.built) < 64 {
		return
	}
	gen := s.gen.Load()
	for k, o := range s.built {
		if o.gen != gen || s.clock.Since(o.at) >= snapshotTTL {
			delete(s.built, k)
		}
	}
}

// jobRecords are the records every group's cards read, read once for all the
// snapshots built while nothing changes.
func (s *snapshotCache) jobRecords(read func() (jobRecords, error)) (jobRecords, error) {
	gen := s.gen.Load()
	s.mu.Lock()
	r := s.records
	s.mu.Unlock()
	if r != nil && r.gen == gen && s.clock.Since(r.at) < snapshotTTL {
		return r.recs, nil
	}
	recs, err, _ := s.flight.Do("records@"+strconv.FormatUint(gen, 10), func() (any, error) {
		at := s.clock.Now()
		recs, err := read()
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.records == nil || s.records.gen <= gen {
			s.records = &keptRecords{gen: gen, at: at, recs: recs}
		}
		s.mu.Unlock()
		return recs, nil
	})
	if err != nil {
		return jobRecords{}, err
	}
	return recs.(jobRecords), nil
}

// buildSnapshot is the viewer's snapshot frame: their cards, and their health from
// those cards and the dependencies' last check (checked once per health tick, not once
// per dashboard). The jobs' records are read once for every group whose snapshot is
// built while nothing changes, the firm's pauses are the config watch's (watchConfig).
func (g *Gateway) buildSnapshot(ctx context.Context, v Viewer) ([]byte, error) {
	recs, err := g.snapshots.jobRecords(func() (jobRecords, error) { return g.readJobRecords(ctx) })
	if err != nil {
		g.log.Warn("websocket: cannot read the jobs' records for a snapshot", "err", err)
		return nil, err
	}
	firm, err := g.configs.firmConfigs(ctx, v)
	if err != nil {
		g.log.Warn("websocket: the config watch has not loaded; no snapshot", "err", err)
		return nil, err
	}
	cards, err := g.cardsFrom(ctx, v, recs, firm)
	if err != nil {
		g.log.Warn("websocket: cannot build a snapshot; the dashboards waiting for it are closed with 1011 and reconnect", "err", err)
		return nil, err
	}
	h := g.healthFrom(g.recentDeps(ctx), cards, nil, v)
	return json.Marshal(Frame{Type: "snapshot", Jobs: cards, Health: &h, ServerTime: g.cfg.Clock.Now()})
}
