package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/topology"
	"github.com/lexhq/gstjobs/services/gateway"
)

// maxFailoverGap bounds how long work may stand still when one NATS node of three is
// lost.
const maxFailoverGap = 10 * time.Second

// ownFailoverPart and ownJobFailoverPart are what the system may add to nats-server's
// election of the lost leaders' successors: a request or an async publish the new
// leader took before it could commit is answered within bus.AttemptTimeout or sent
// again (seen: 1.9 s after JOBS_EVENTS's election; 4.1 s when async acks were awaited
// for 5 s), then the round's own work; and, for one job, its next pull (up to 5 s).
const (
	ownFailoverPart    = bus.AttemptTimeout + time.Second
	ownJobFailoverPart = ownFailoverPart + 5*time.Second
)

// maxJobFailoverGap bounds how long any one job may stand still then while others go
// on: the stream leader's election (nats-server's raft waits 4 to 9 s for a silent
// leader), then that job's own next round (a pull request of up to 5 s, a KV request
// retried within 2 s). Beyond it a job is stuck, not failing over.
const maxJobFailoverGap = 15 * time.Second

// Tried: the production topology as OS processes (three nats-server processes, every
// stream and bucket at three replicas, two tickers, two of each job service, two
// gateways, each service its own NATS user), under steady load: a trigger every 0.4 s
// from a developer's client (every tenth with the nats CLI) and a Run Now every 2.5 s
// on either gateway, across the five jobs, with every job's schedule set to every
// minute. Then: kill -9 the node that leads JOBS, restart it; kill -9 the node that
// leads KV_jobs_runs, restart it; kill -9 two nodes for 20 s, restart them; a job
// service SIGTERMed in the middle of a run; every service SIGTERMed and started again,
// one at a time.
//
// Must hold: every trigger is answered with a run, and every run that was queued has
// one result and one audit_log row; every schedule slot runs exactly once, none is
// missed; no two runs of a job overlap; no service exits or needs a restart; work
// stands still for at most 10 s when one node is lost. While two nodes are lost, the
// gateways' and the job services' /readyz and /api/health say JetStream is unavailable
// and Run Now answers 503 saying whether its trigger may have been stored (a trigger
// it says was not stored never runs); nothing is lost when the nodes return. A job
// service SIGTERMed mid-run hands the run back when its grace is over and the other
// replica starts it within two seconds, not after the ack wait. A Run Now on one
// gateway shows live on the other's websocket, before and after everything. The
// failover gaps and the recovery after the quorum returns are printed.
func TestClusterLosesNodesAndRestartsEveryService(tt *testing.T) {
	t := recordFailures(tt)
	const grace = 3 * time.Second // SHUTDOWN_GRACE of the job services
	bins := buildClusterBinaries(t, t.TempDir())
	c := startClusterSystem(t, bins, fmt.Sprintf("SHUTDOWN_GRACE=%s", grace))
	gws := c.topo.Gateways()
	tl := &timeline{t: t, start: time.Now()}
	t.Cleanup(func() {
		if t.Failed() {
			tl.print()
		}
	})

	for _, job := range catalog.Names() {
		if code, body, err := c.call(gws[0], "operator", http.MethodPut, "/api/jobs/"+job+"/schedule", `{"schedule":"* * * * *"}`); err != nil || code != http.StatusOK {
			t.Fatalf("schedule %s every minute: %d %s %v", job, code, body, err)
		}
	}
	scheduledAt := time.Now()
	c.seenLiveOnTheOtherGateway(gws[0], gws[1])
	load := startLoad(c, natsCLI(t))
	tl.mark("load started")
	c.during(8*time.Second, tl)

	// One node lost: the leader of JOBS, then the leader of the runs bucket.
	var oneLost [][2]time.Time
	var elected []map[string]time.Time // the raft groups the lost node led: when each had a new leader
	for _, stream := range []string{"JOBS", "KV_jobs_runs"} {
		node := c.topo.NATS.Node(c.leaderOf(stream))
		node.Kill()
		lost := tl.mark(fmt.Sprintf("kill -9 %s, the leader of %s", node.Name, stream))
		c.during(10*time.Second, tl)
		elected = append(elected, c.elections(lost, time.Now()))
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
		tl.mark("restarted " + node.Name)
		if err := node.WaitHealthy(context.Background()); err != nil {
			t.Fatal(err)
		}
		oneLost = append(oneLost, [2]time.Time{lost, tl.mark(node.Name + " healthy")})
		c.during(4*time.Second, tl)
	}

	// Two nodes lost: no quorum for 20 s.
	first := c.leaderOf("JOBS")
	second := c.leaderOf("KV_jobs_runs")
	if second == first {
		second = slices.DeleteFunc(slices.Clone(topology.NATSNodes), func(n string) bool { return n == first })[0]
	}
	lostBoth := []*topology.Node{c.topo.NATS.Node(first), c.topo.NATS.Node(second)}
	for _, n := range lostBoth {
		n.Kill()
	}
	quorumLost := tl.mark("kill -9 " + first + " and " + second + ": no quorum")
	notStored := c.whileQuorumIsLost(quorumLost, tl)
	c.during(20*time.Second-time.Since(quorumLost), tl)
	for _, n := range lostBoth {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	quorumBack := tl.mark("restarted " + first + " and " + second)
	for _, n := range lostBoth {
		if err := n.WaitHealthy(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	tl.mark("both healthy")
	for _, s := range c.topo.Services {
		if err := s.WaitReady(context.Background(), time.Minute); err != nil {
			t.Fatalf("%v: a service must come back on its own when NATS does", err)
		}
	}
	tl.mark("every service ready again, none restarted")

	// A job service SIGTERMed mid-run hands its run back; then every service is
	// restarted, one at a time.
	c.handsBackOnSIGTERM(grace, tl)
	for _, s := range c.topo.Services {
		stopped := time.Now()
		if err := s.Stop(topology.StopGrace); err != nil {
			t.Errorf("SIGTERM %s: %v", s.Name, err)
		}
		took := time.Since(stopped)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitReady(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
		tl.mark(fmt.Sprintf("restarted %s (stopped in %s)", s.Name, took.Round(10*time.Millisecond)))
	}
	c.during(4*time.Second, tl)
	c.seenLiveOnTheOtherGateway(gws[0], gws[1])

	// Stop the load, put the schedules back, let everything finish.
	for _, job := range catalog.Names() {
		if code, body, err := c.call(gws[1], "operator", http.MethodPut, "/api/jobs/"+job+"/schedule", `{"schedule":""}`); err != nil || code != http.StatusOK {
			t.Fatalf("schedule %s back to its default: %d %s %v", job, code, body, err)
		}
	}
	unscheduledAt := time.Now()
	sent := load.finish()
	tl.mark(fmt.Sprintf("load stopped: %d triggers sent", len(sent)))
	c.quiet(90 * time.Second)
	tl.mark("quiet")

	ev := c.readEvents()
	audit := c.auditRuns()
	v := checkClusterRun(t, sent, ev, audit, notStored, quorumLost, quorumBack)
	checkSlots(t, ev, scheduledAt, unscheduledAt)

	// How long work stood still, and how long it took to come back. nats-server elects
	// a lost leader's successor after a random 4 to 9 s without its heartbeat, and
	// again when a first round fails (raft's election timeouts, not configurable): the
	// bounds are the 10 s (15 s for one job) or, when an election of a group on
	// the work path took longer than that allows, that election plus what is ours
	// (ownFailoverPart).
	for i, w := range oneLost {
		what := []string{"the JOBS leader", "the KV_jobs_runs leader"}[i]
		elect := lastElection(elected[i], w[0], onWorkPath(""))
		gap, at := longestGap(v.waits, v.finishes, w[0], w[1].Add(5*time.Second))
		t.Logf("failover gap, one node lost (%s): %s, from %s; nats-server elected new leaders for %s",
			what, gap, at.Sub(tl.start).Round(10*time.Millisecond), describeElections(elected[i], w[0]))
		if limit := max(maxFailoverGap, elect+ownFailoverPart); gap > limit {
			t.Errorf("work stood still for %s after losing one node of three; want at most %s (the last election on the work path took %s)", gap, limit, elect)
		}
		// And for each job on its own: no job may stand still longer while the others go on.
		var worst []string
		for _, job := range catalog.Names() {
			jg, jat := longestGap(slices.DeleteFunc(slices.Clone(v.waits), func(s span) bool { return s.job != job }), v.jobFinishes[job], w[0], w[1].Add(5*time.Second))
			worst = append(worst, fmt.Sprintf("%s %s", job, jg))
			jelect := lastElection(elected[i], w[0], onWorkPath(job))
			if limit := max(maxJobFailoverGap, jelect+ownJobFailoverPart); jg > limit {
				t.Errorf("%s stood still for %s from %s after losing one node of three (%s); want at most %s (the last election on its path took %s)", job, jg, jat.Sub(tl.start).Round(10*time.Millisecond), what, limit, jelect)
			}
		}
		t.Logf("  each job's own longest gap: %s", strings.Join(worst, ", "))
	}
	gap, _ := longestGap(v.waits, v.finishes, quorumLost, quorumBack.Add(time.Minute))
	var firstAfter time.Time
	for _, f := range v.finishes {
		if f.After(quorumBack) && (firstAfter.IsZero() || f.Before(firstAfter)) {
			firstAfter = f
		}
	}
	var backlog time.Duration
	for _, w := range v.waits {
		if w.from.Before(quorumBack) && w.to.After(quorumBack) {
			backlog = max(backlog, w.to.Sub(quorumBack))
		}
	}
	t.Logf("quorum lost for %s: work stood still for %s; after the nodes were restarted the first run finished in %s, and every trigger sent while they were down had run within %s",
		quorumBack.Sub(quorumLost).Round(100*time.Millisecond), gap.Round(10*time.Millisecond), firstAfter.Sub(quorumBack).Round(10*time.Millisecond), backlog.Round(10*time.Millisecond))
	answers, retried := map[string]int{}, 0
	for _, tr := range sent {
		if tr.Via == "api" {
			answers[fmt.Sprintf("%d%s", tr.Code, map[bool]string{true: " stored " + tr.Stored}[tr.Stored != ""])]++
		} else if tr.Attempts > 1 {
			retried++
		}
	}
	t.Logf("%d triggers (%d over NATS, %d with the nats CLI, %d Run Now), %d runs, %d audit rows; Run Now answers %v; %d NATS triggers published more than once before JetStream confirmed them",
		len(sent), v.via["nats"], v.via["nats-cli"], v.via["api"], len(v.runs), len(audit), answers, retried)
	if !t.Failed() {
		tl.print()
	}
}

// timeline notes when each step happened, for the log.
type timeline struct {
	t     testing.TB
	start time.Time
	marks []string
}

func (tl *timeline) mark(what string) time.Time {
	now := time.Now()
	tl.marks = append(tl.marks, fmt.Sprintf("%7.2fs  %s", now.Sub(tl.start).Seconds(), what))
	return now
}

func (tl *timeline) print() { tl.t.Logf("timeline:\n%s", strings.Join(tl.marks, "\n")) }

// during lets the load run for d, failing as soon as a service exits.
func (c *clusterSystem) during(d time.Duration, tl *timeline) {
	c.t.Helper()
	exited := make(chan *topology.Service, len(c.topo.Services))
	stop := make(chan struct{})
	defer close(stop)
	for _, s := range c.topo.Services {
		go func() {
			select {
			case <-s.Exited():
				exited <- s
			case <-stop:
			}
		}()
	}
	select {
	case s := <-exited:
		c.t.Fatalf("%s exited (%v); a service must ride out what NATS does", s.Name, s.Err())
	case <-time.After(d):
	}
}

// whileQuorumIsLost checks what people and probes are told while two nodes of three
// are down, and returns the triggers Run Now said were not stored.
func (c *clusterSystem) whileQuorumIsLost(lost time.Time, tl *timeline) (notStored []string) {
	c.t.Helper()
	gws := c.topo.Gateways()
	probes := []struct {
		what string
		ok   func() (bool, string)
	}{
		{"gateway-1 /readyz", func() (bool, string) {
			code, body, err := c.call(gws[0], "", http.MethodGet, "/readyz", "")
			return err == nil && code == http.StatusServiceUnavailable && strings.Contains(string(body), "jetstream: JetStream is unavailable"), fmt.Sprintf("%d %s %v", code, body, err)
		}},
		{"gateway-2 /api/health", func() (bool, string) {
			code, body, err := c.call(gws[1], "", http.MethodGet, "/api/health", "")
			var h gateway.Health
			_ = json.Unmarshal(body, &h)
			return err == nil && code == http.StatusServiceUnavailable && strings.Contains(h.Problem, "JetStream is unavailable") &&
				strings.HasPrefix(h.Checks["nats"], "jetstream unavailable: "), fmt.Sprintf("%d %s %v", code, body, err)
		}},
		{"sla-1 /readyz", func() (bool, string) {
			ok, why := c.topo.Service("sla-1").Ready(context.Background())
			return !ok && strings.Contains(why, "503") && strings.Contains(why, "jetstream: JetStream is unavailable"), why
		}},
	}
	for _, p := range probes {
		var why string
		if poll(time.Until(lost.Add(15*time.Second)), 250*time.Millisecond, func() bool {
			var ok bool
			ok, why = p.ok()
			return ok
		}) {
			tl.mark(p.what + " says JetStream is unavailable: " + firstLine(why, 160))
		} else {
			c.t.Errorf("%s 15s after the quorum was lost: %s; want 503 saying JetStream is unavailable", p.what, why)
		}
	}
	code, body, err := c.call(gws[0], "operator", http.MethodPost, "/api/jobs/"+catalog.CheckSLAAndOverdue+"/run", `{"reason":"while the quorum is lost"}`)
	var ans struct {
		Error     string `json:"error"`
		Stored    string `json:"stored"`
		TriggerID string `json:"trigger_id"`
	}
	_ = json.Unmarshal(body, &ans)
	tl.mark(fmt.Sprintf("Run Now while the quorum is lost: %d stored=%s %q", code, ans.Stored, ans.Error))
	switch {
	case err != nil || code != http.StatusServiceUnavailable:
		c.t.Errorf("Run Now while the quorum is lost: %d %s %v; want 503", code, body, err)
	case ans.Stored == "unknown" && strings.Contains(ans.Error, "may have been stored"):
	case ans.Stored == "no" && strings.Contains(ans.Error, "was not stored"):
		notStored = append(notStored, ans.TriggerID)
	default:
		c.t.Errorf("Run Now while the quorum is lost: %s; want stored no or unknown and a sentence that says which", body)
	}
	return notStored
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// seenLiveOnTheOtherGateway presses Run Now on one gateway and waits for the run on
// the other's websocket.
func (c *clusterSystem) seenLiveOnTheOtherGateway(on, watch *topology.Service) {
	c.t.Helper()
	ws := dialWSAt(c.t, watch.URL(), http.Header{"Authorization": {"Bearer " + c.token("operator")}})
	ws.next("snapshot", func(f gateway.Frame) bool { return f.Type == "snapshot" })
	code, body, err := c.call(on, "operator", http.MethodPost, "/api/jobs/"+catalog.CaptureAnalyticsSnapshot+"/run", `{"reason":"seen on the other gateway"}`)
	var acc gateway.Accepted
	_ = json.Unmarshal(body, &acc)
	if err != nil || code != http.StatusAccepted || acc.RunID == "" {
		c.t.Fatalf("Run Now on %s: %d %s %v; want 202 with a run", on.Name, code, body, err)
	}
	ws.next("the result of the run pressed on "+on.Name+", on "+watch.Name+"'s websocket", func(f gateway.Frame) bool {
		return f.Type == "result" && f.Result != nil && f.Result.RunID == acc.RunID
	})
	ws.conn.Close()
}

// handsBackOnSIGTERM holds the tasks table so that an SLA check blocks in its first
// statement, SIGTERMs the sla replica that runs it, and waits for the other replica to
// start it again.
func (c *clusterSystem) handsBackOnSIGTERM(grace time.Duration, tl *timeline) {
	c.t.Helper()
	ctx := context.Background()
	statuses := make(chan *nats.Msg, 4096)
	sub, err := c.nc.ChanSubscribe(events.StatusSubject(catalog.CheckSLAAndOverdue), statuses)
	if err != nil {
		c.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	lock, err := c.pool.Begin(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE"); err != nil {
		c.t.Fatal(err)
	}
	locked := time.Now()
	// The load triggers SLA checks all the time; this one makes sure of one more.
	if _, err := c.js.Publish(ctx, events.TriggerSubject(catalog.CheckSLAAndOverdue), []byte(`{"reason":"SIGTERM mid-run"}`), jetstream.WithMsgID("cluster-handback")); err != nil {
		c.t.Fatal(err)
	}
	// A run that starts now blocks in its first statement, on the tasks table; so does
	// one the load started a moment before the lock, if it had not read the tasks yet.
	running := c.blockedRun(statuses, locked)
	runID := running.RunID
	var holder *topology.Service
	for _, s := range c.topo.Services {
		if s.User == "sla" && strings.HasSuffix(running.Instance, fmt.Sprintf("-%d", s.Pid())) {
			holder = s
		}
	}
	if holder == nil {
		c.t.Fatalf("no sla replica has the pid of instance %s", running.Instance)
	}
	tl.mark(fmt.Sprintf("SIGTERM %s in the middle of run %s", holder.Name, runID))
	sigterm := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- holder.Stop(topology.StopGrace) }()
	again := c.nextStatus(statuses, "the other replica starting run "+runID+" again", func(s events.Status) bool {
		return s.State == events.StateRunning && s.RunID == runID && s.Attempt == running.Attempt+1
	})
	took := time.Since(sigterm)
	tl.mark(fmt.Sprintf("the other replica (%s) started the run again %s after the SIGTERM (grace %s)", again.Instance, took.Round(10*time.Millisecond), grace))
	if took > grace+2*time.Second {
		c.t.Errorf("the other replica started the run %s after the SIGTERM; want within the grace (%s) and 2s, not the ack wait", took, grace)
	}
	if err := lock.Rollback(ctx); err != nil {
		c.t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		c.t.Errorf("SIGTERM %s: %v", holder.Name, err)
	}
	if err := holder.Start(); err != nil {
		c.t.Fatal(err)
	}
	if err := holder.WaitReady(ctx, time.Minute); err != nil {
		c.t.Fatal(err)
	}
}

// blockedRun waits for the SLA check that is blocked on the tasks table, locked at
// locked: the job's current run in the runs bucket, with a running status of the same
// attempt, once a backend waits for the lock. It fails after 30 s.
func (c *clusterSystem) blockedRun(ch <-chan *nats.Msg, locked time.Time) events.Status {
	c.t.Helper()
	ctx := context.Background()
	kv, err := c.js.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		c.t.Fatal(err)
	}
	started := map[string]events.Status{} // run id and attempt -> its running status
	current := map[string]time.Time{}     // run id and attempt -> when first seen current with a waiter
	var found events.Status
	var last string
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		for drained := false; !drained; {
			select {
			case m := <-ch:
				var s events.Status
				if json.Unmarshal(m.Data, &s) == nil && s.State == events.StateRunning {
					started[fmt.Sprintf("%s/%d", s.RunID, s.Attempt)] = s
				}
			default:
				drained = true
			}
		}
		var waiting bool
		if err := c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'tasks'::regclass AND NOT granted)`).Scan(&waiting); err != nil {
			last = err.Error()
			return false
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r, _, err := jobstate.Get[jobstate.Runs](rctx, kv, catalog.CheckSLAAndOverdue)
		switch {
		case err != nil:
			last = err.Error()
			return false
		case r.Current == nil:
			last = "no current run"
			return false
		case !waiting:
			last = "run " + r.Current.RunID + " is current, and nothing waits for the lock"
			return false
		}
		key := fmt.Sprintf("%s/%d", r.Current.RunID, r.Current.Attempt)
		s, ok := started[key]
		if !ok {
			last = "no running status of the current run " + r.Current.RunID
			return false
		}
		if _, ok := current[key]; !ok {
			current[key] = time.Now()
		}
		// Begun after the lock, it cannot have read the tasks; begun before, it is
		// blocked if it is still current a second later (a run takes milliseconds).
		if !s.At.After(locked) && time.Since(current[key]) < time.Second {
			last = "run " + r.Current.RunID + " began before the lock"
			return false
		}
		found = s
		return true
	}) {
		c.t.Fatalf("within 30s of locking the tasks table (at %s): no SLA check blocked on it: %s", locked.Format(time.StampMilli), last)
	}
	return found
}

func (c *clusterSystem) nextStatus(ch <-chan *nats.Msg, what string, match func(events.Status) bool) events.Status {
	c.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-ch:
			var s events.Status
			if json.Unmarshal(m.Data, &s) == nil && match(s) {
				return s
			}
		case <-timeout:
			c.t.Fatalf("within 30s: no status of %s", what)
		}
	}
}

// verdict is what checkClusterRun found: the runs, how long each trigger waited, when
// runs finished.
type verdict struct {
	runs     map[string]events.Result
	waits    []span
	finishes []time.Time
	// jobFinishes are finishes by job.
	jobFinishes map[string][]time.Time
	via         map[string]int
}

// checkClusterRun checks that every trigger was answered and ran, that every run was
// written once, and that no two runs of a job overlapped.
func checkClusterRun(t testing.TB, sent []*sentTrigger, ev jobEvents, audit map[string]int, notStored []string, quorumLost, quorumBack time.Time) verdict {
	t.Helper()
	v := verdict{runs: map[string]events.Result{}, via: map[string]int{}, jobFinishes: map[string][]time.Time{}}
	resultsOf := map[string]int{}
	for _, r := range ev.results {
		if r.Status == events.StatusRejected {
			t.Errorf("a rejected trigger: %s", r.ErrorMessage)
			continue
		}
		resultsOf[r.RunID]++
		v.runs[r.RunID] = r
		v.finishes = append(v.finishes, r.FinishedAt)
		v.jobFinishes[r.JobName] = append(v.jobFinishes[r.JobName], r.FinishedAt)
	}
	answer := map[string]string{} // trigger id -> run id
	for _, s := range ev.statuses {
		if s.State == events.StateQueued {
			answer[s.TriggerID] = s.RunID
			if _, ok := v.runs[s.RunID]; !ok {
				t.Errorf("run %s of %s was queued (for trigger %s) and never finished", s.RunID, s.JobName, s.TriggerID)
			}
		}
	}
	for id, n := range resultsOf {
		if n != 1 {
			t.Errorf("run %s has %d results; want 1", id, n)
		}
		if audit[id] != 1 {
			t.Errorf("run %s (%s) has %d audit_log rows; want 1", id, v.runs[id].JobName, audit[id])
		}
	}
	for id, n := range audit {
		if _, ok := v.runs[id]; !ok {
			t.Errorf("audit_log has %d rows of run %s, of which JOBS_EVENTS has no result", n, id)
		}
	}
	for _, tr := range sent {
		v.via[tr.Via]++
		quorumWindow := !tr.SentAt.Before(quorumLost.Add(-7*time.Second)) && tr.SentAt.Before(quorumBack.Add(5*time.Second))
		switch {
		case tr.Via != "api" && tr.StoredAt.IsZero():
			t.Errorf("trigger %s (%s) was never confirmed by JetStream after %d attempts: %s", tr.ID, tr.Via, tr.Attempts, tr.Err)
			continue
		case tr.Via == "api" && tr.Code == 0:
			t.Errorf("Run Now of %s at %s: no gateway answered (%s)", tr.Job, tr.SentAt.Format(time.TimeOnly), tr.Err)
			continue
		case tr.Via == "api" && tr.Code == http.StatusServiceUnavailable:
			if !quorumWindow {
				t.Errorf("Run Now of %s at %s answered 503 (%s) with the quorum intact", tr.Job, tr.SentAt.Format(time.TimeOnly), tr.Answer)
			}
			if tr.Stored == "no" {
				notStored = append(notStored, tr.ID)
				continue
			}
			if tr.Stored != "unknown" {
				t.Errorf("Run Now of %s answered 503 without saying whether it was stored: %s", tr.Job, tr.Answer)
			}
			if _, ok := answer[tr.ID]; !ok {
				continue // it was not stored after all
			}
		case tr.Via == "api" && tr.Code != http.StatusAccepted:
			t.Errorf("Run Now of %s at %s: %d %s", tr.Job, tr.SentAt.Format(time.TimeOnly), tr.Code, tr.Answer)
			continue
		}
		runID, ok := answer[tr.ID]
		switch {
		case !ok:
			t.Errorf("trigger %s (%s, %s, sent %s) was never answered", tr.ID, tr.Via, tr.Job, tr.SentAt.Format(time.TimeOnly))
			continue
		case tr.RunID != "" && tr.RunID != runID:
			t.Errorf("Run Now %s was answered with run %s, but its queued status names run %s", tr.ID, tr.RunID, runID)
		}
		if r, ok := v.runs[runID]; ok {
			v.waits = append(v.waits, span{tr.Job, tr.SentAt, r.FinishedAt})
		}
	}
	for _, id := range notStored {
		if run, ok := answer[id]; ok {
			t.Errorf("Run Now said trigger %s was not stored, and it ran (run %s)", id, run)
		}
	}
	// No two runs of a job overlap.
	byJob := map[string][]events.Result{}
	for _, r := range v.runs {
		byJob[r.JobName] = append(byJob[r.JobName], r)
	}
	for job, runs := range byJob {
		slices.SortFunc(runs, func(a, b events.Result) int { return a.StartedAt.Compare(b.StartedAt) })
		for i := 1; i < len(runs); i++ {
			if runs[i].StartedAt.Before(runs[i-1].FinishedAt) {
				t.Errorf("%s: run %s started at %s, before run %s finished at %s", job, runs[i].RunID, runs[i].StartedAt.Format(time.StampMilli), runs[i-1].RunID, runs[i-1].FinishedAt.Format(time.StampMilli))
			}
		}
	}
	return v
}

// checkSlots checks that every job's every minute between the two schedule changes
// ran exactly once, in one run, and none was missed.
func checkSlots(t testing.TB, ev jobEvents, from, to time.Time) {
	t.Helper()
	type slot struct {
		job string
		at  int64
	}
	ran := map[slot]int{}
	for _, r := range ev.results {
		for _, tr := range r.Triggers {
			if tr.Kind == events.KindSchedule {
				ran[slot{r.JobName, tr.Slot.Unix()}]++
			}
		}
	}
	for _, s := range ev.statuses {
		if s.State == events.StateMissed {
			t.Errorf("%s: the slot %s was missed", s.JobName, s.Slot.Format(time.TimeOnly))
		}
	}
	n := 0
	for m := from.Truncate(time.Minute).Add(time.Minute); m.Before(to.Add(-5 * time.Second)); m = m.Add(time.Minute) {
		for _, job := range catalog.Names() {
			n++
			if got := ran[slot{job, m.Unix()}]; got != 1 {
				t.Errorf("%s: the slot %s ran %d times; want exactly once", job, m.Format(time.TimeOnly), got)
			}
		}
	}
	if n == 0 {
		t.Error("no schedule slot fell within the test: it must last past a minute boundary")
	}
	t.Logf("%d schedule slots, each run exactly once", n)
}

// onWorkPath says whether a raft group ("JOBS", "JOBS > run-x") is one a run of job
// waits on: the streams and consumers every run goes through, and the job's own
// consumers. For job "", those of any job.
func onWorkPath(job string) func(group string) bool {
	return func(g string) bool {
		switch {
		case g == "JOBS", g == "KV_jobs_runs", g == "JOBS_EVENTS", strings.HasPrefix(g, "JOBS_EVENTS > "):
			return true
		case job == "":
			return strings.HasPrefix(g, "JOBS > ")
		default:
			return g == "JOBS > run-"+job || g == "JOBS > trigger-"+job
		}
	}
}

// lastElection is how long after lost the last of the groups keep elected a leader.
func lastElection(elected map[string]time.Time, lost time.Time, keep func(string) bool) time.Duration {
	var last time.Duration
	for g, at := range elected {
		if keep(g) {
			last = max(last, at.Sub(lost))
		}
	}
	return last
}

// describeElections lists the groups on the work path with how long after lost each
// had its new leader.
func describeElections(elected map[string]time.Time, lost time.Time) string {
	var out []string
	for _, g := range slices.Sorted(maps.Keys(elected)) {
		if onWorkPath("")(g) {
			out = append(out, fmt.Sprintf("%s after %s", g, elected[g].Sub(lost).Round(10*time.Millisecond)))
		}
	}
	if len(out) == 0 {
		return "none on the work path"
	}
	return strings.Join(out, ", ")
}
