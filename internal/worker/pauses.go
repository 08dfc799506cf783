package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/jobstate"
)

// firmPauses knows which firms paused which job, from a watch of the config bucket
// (keys <job>.<tenant>), so that a run for every firm skips them without a read at
// the start of each run. The watch delivers every current key before Start returns.
type firmPauses struct {
	mu     sync.Mutex
	paused map[string]map[string]bool // job → tenant → paused
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
}

// watchPauses watches until stop; ctx bounds the wait for the current keys only.
func watchPauses(ctx context.Context, kv jetstream.KeyValue) (*firmPauses, error) {
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := kv.Watch(watchCtx, "*.*")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("worker: watch firms' pauses: %w", err)
	}
	p := &firmPauses{paused: map[string]map[string]bool{}, w: w, cancel: cancel}
	ready := make(chan struct{})
	go func() {
		once := sync.OnceFunc(func() { close(ready) })
		defer once()
		for e := range w.Updates() {
			if e == nil {
				once()
				continue
			}
			var c jobstate.Config
			if e.Operation() == jetstream.KeyValuePut {
				_ = json.Unmarshal(e.Value(), &c)
			}
			job, tenant := jobstate.SplitConfigKey(e.Key())
			p.set(job, tenant, c.Paused)
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	return p, nil
}

func (p *firmPauses) set(job, tenant string, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused[job] == nil {
		p.paused[job] = map[string]bool{}
	}
	if paused {
		p.paused[job][tenant] = true
	} else {
		delete(p.paused[job], tenant)
	}
}

// of lists the firms that paused job, sorted.
func (p *firmPauses) of(job string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.paused[job]))
	for t := range p.paused[job] {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (p *firmPauses) stop() {
	if p != nil && p.w != nil {
		_ = p.w.Stop()
		p.cancel()
	}
}
