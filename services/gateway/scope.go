package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
)

// Jobs and their runs are system-wide, and every firm's admins see them. Who pressed
// Run Now and why belongs to that person's firm: the trigger's audit row carries its
// tenant_id. A viewer from another firm sees OtherFirm and no reason. Triggers with no
// firm (schedule slots, `nats pub` by a developer) are shown to everyone.

// OtherFirm stands in for a person at another firm.
const OtherFirm = "someone at another firm"

// unknownOwner marks a trigger whose firm could not be looked up: hidden from all.
const unknownOwner = "\x00unknown"

// owners maps a trigger id to the tenant of the person who sent it ("" for none).
type owners map[string]string

func (o owners) hidden(viewer, triggerID string) bool {
	t := o[triggerID]
	return t != "" && t != viewer
}

// ownerCache remembers trigger and run owners, which never change. It is bounded by
// starting afresh when full.
type ownerCache struct {
	mu sync.Mutex
	m  map[string]string
}

const ownerCacheMax = 4096

func (c *ownerCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *ownerCache) put(key, tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= ownerCacheMax {
		c.m = map[string]string{}
	}
	c.m[key] = tenant
}

// One probe of the unique dedupe_key index per trigger, in one statement.
const triggerOwnersQuery = `
SELECT details->>'trigger_id', coalesce(tenant_id::text, '')
FROM audit_log WHERE dedupe_key = ANY($1)`

// triggerOwners finds the firm of each trigger. The API writes a trigger's row before
// it sends the trigger, so a trigger with no row has no firm. If the database cannot
// answer, every trigger is treated as another firm's.
func (g *Gateway) triggerOwners(ctx context.Context, ids []string) owners {
	o := owners{}
	var keys []string
	for _, id := range ids {
		if id == "" {
			continue
		}
		if t, ok := g.auth.owners.get("trigger:" + id); ok {
			o[id] = t
			continue
		}
		if _, dup := o[id]; !dup {
			o[id] = ""
			keys = append(keys, "trigger:"+id)
		}
	}
	if len(keys) == 0 {
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rows, err := g.cfg.Pool.Query(ctx, triggerOwnersQuery, keys)
	if err == nil {
		for rows.Next() {
			var id, tenant string
			if err = rows.Scan(&id, &tenant); err != nil {
				break
			}
			o[id] = tenant
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		g.log.Warn("cannot look up who sent triggers; hiding their names", "err", err)
		for _, k := range keys {
			o[k[len("trigger:"):]] = unknownOwner
		}
		return o
	}
	for _, k := range keys {
		id := k[len("trigger:"):]
		g.auth.owners.put(k, o[id])
	}
	return o
}

// runOwner finds the firm of the person whose trigger started a run (the run's
// requested_by and reason are theirs), from the runs bucket while it is queued or
// running.
func (g *Gateway) runOwner(ctx context.Context, job, runID string) string {
	if runID == "" {
		return ""
	}
	if t, ok := g.auth.owners.get("run:" + runID); ok {
		return t
	}
	runs, _, err := jobstate.Get[jobstate.Runs](ctx, g.buckets.Runs, job)
	if err != nil {
		return unknownOwner
	}
	var first string
	for _, ri := range []*jobstate.RunInfo{runs.Current, runs.Next} {
		if ri != nil && ri.RunID == runID && len(ri.Triggers) > 0 {
			first = ri.Triggers[0].ID
		}
	}
	if first == "" {
		return "" // the run is over; its statuses carry nothing more to hide
	}
	t := g.triggerOwners(ctx, []string{first})[first]
	if t != unknownOwner {
		g.auth.owners.put("run:"+runID, t)
	}
	return t
}

func firstTrigger(refs []events.TriggerRef) string {
	if len(refs) == 0 {
		return ""
	}
	return refs[0].ID
}

func scopeRefs(refs []events.TriggerRef, o owners, viewer string) []events.TriggerRef {
	if refs == nil {
		return nil
	}
	out := slices.Clone(refs)
	for i := range out {
		if o.hidden(viewer, out[i].ID) {
			out[i].RequestedBy, out[i].Reason = OtherFirm, ""
		}
	}
	return out
}

func (v RunView) scoped(o owners, viewer string) RunView {
	if o.hidden(viewer, firstTrigger(v.Triggers)) {
		v.RequestedBy, v.Reason = OtherFirm, ""
	}
	v.Triggers = scopeRefs(v.Triggers, o, viewer)
	return v
}

func scopeRunInfo(ri *jobstate.RunInfo, o owners, viewer string) *jobstate.RunInfo {
	if ri == nil {
		return nil
	}
	c := *ri
	if o.hidden(viewer, firstTrigger(c.Triggers)) {
		c.RequestedBy, c.Reason = OtherFirm, ""
	}
	c.Triggers = scopeRefs(c.Triggers, o, viewer)
	return &c
}

func scopeResult(r events.Result, o owners, viewer string) events.Result {
	first := r.TriggerID
	if first == "" {
		first = firstTrigger(r.Triggers)
	}
	if o.hidden(viewer, first) {
		r.RequestedBy, r.Reason = OtherFirm, ""
	}
	r.Triggers = scopeRefs(r.Triggers, o, viewer)
	return r
}

func scopeStatus(s events.Status, owner, viewer string) events.Status {
	if owner != "" && owner != viewer {
		s.RequestedBy, s.Reason = OtherFirm, ""
	}
	return s
}

// runTriggerIDs lists every trigger a set of runs names.
func runTriggerIDs(runs []RunView) []string {
	var ids []string
	for _, r := range runs {
		for _, t := range r.Triggers {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// scopeRuns hides other firms' names and reasons from a page of history.
func (g *Gateway) scopeRuns(ctx context.Context, runs []RunView, viewer string) []RunView {
	o := g.triggerOwners(ctx, runTriggerIDs(runs))
	out := make([]RunView, len(runs))
	for i, r := range runs {
		out[i] = r.scoped(o, viewer)
	}
	return out
}

// scopeCards hides other firms' names and reasons from cards.
func (g *Gateway) scopeCards(ctx context.Context, cards []Card, viewer string) []Card {
	var ids []string
	for _, c := range cards {
		if c.LastRun != nil {
			ids = append(ids, runTriggerIDs([]RunView{*c.LastRun})...)
		}
		for _, ri := range []*jobstate.RunInfo{c.Current, c.Queued} {
			if ri != nil {
				for _, t := range ri.Triggers {
					ids = append(ids, t.ID)
				}
			}
		}
	}
	o := g.triggerOwners(ctx, ids)
	out := make([]Card, len(cards))
	for i, c := range cards {
		if c.LastRun != nil {
			lr := c.LastRun.scoped(o, viewer)
			c.LastRun = &lr
		}
		c.Current = scopeRunInfo(c.Current, o, viewer)
		c.Queued = scopeRunInfo(c.Queued, o, viewer)
		out[i] = c
	}
	return out
}
