package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/internal/topology"
	"github.com/lexhq/gstjobs/services/gateway"
)

// buildClusterBinaries builds into dir what `make build` builds into bin/: the five
// services, natsadmin, devstack and nats-server (from the version internal/go.mod
// requires).
func buildClusterBinaries(t testing.TB, dir string) topology.Binaries {
	t.Helper()
	args := []string{"build", "-o", dir + "/"}
	for _, s := range topology.Services {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	args = append(args, "./cmd/natsadmin", "./cmd/devstack", "github.com/nats-io/nats-server/v2")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return topology.Binaries(dir)
}

// clusterSystem is the production topology as OS processes (internal/topology), on a
// database of the test's, with the demo data; the test talks to it as people and
// developers do: the gateways' HTTP API and websocket, and NATS as the developer user.
type clusterSystem struct {
	t    testing.TB
	topo *topology.Topology
	pool *pgxpool.Pool
	// nc and js are the developer user's, as the nats CLI connects in production.
	nc   *nats.Conn
	js   jetstream.JetStream
	logs map[string]*syncBuffer
}

func startClusterSystem(t testing.TB, bins topology.Binaries, env ...string) *clusterSystem {
	t.Helper()
	c := &clusterSystem{t: t, logs: map[string]*syncBuffer{}}
	var dbURL string
	c.pool, dbURL = pgtest.NewPool(t)
	if _, err := demo.Load(context.Background(), c.pool); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ports := map[string]int{}
	port := func(name, kind string) int {
		mu.Lock()
		defer mu.Unlock()
		key := name + "/" + kind
		if p, ok := ports[key]; ok {
			return p
		}
		for {
			p := freePort(t)
			// The system may hand out a port it handed out before, which another process
			// of ours has not taken yet.
			if !slices.Contains(slices.Collect(maps.Values(ports)), p) {
				ports[key] = p
				return p
			}
		}
	}
	out := func(name string) io.Writer {
		mu.Lock()
		defer mu.Unlock()
		b := &syncBuffer{}
		c.logs[name] = b
		return b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topo, err := topology.Start(ctx, topology.Config{
		Bin: bins, Dir: t.TempDir(), DatabaseURL: dbURL, Replicas: 2, Port: port, Out: out,
		Env:        append([]string{"LOG_LEVEL=info", "LOG_FORMAT=text", "JOBS_TIMEZONE=Asia/Kolkata"}, env...),
		GatewayEnv: []string{"AUTH_JWT_SECRET=" + string(testSecret), "OPERATOR_JWT_SECRET=" + string(testOperatorSecret), "GATEWAY_DEV_MODE=false"},
	})
	if err != nil {
		c.dumpLogs()
		t.Fatal(err)
	}
	c.topo = topo
	t.Cleanup(func() {
		if err := topo.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			c.dumpLogs()
		} else {
			c.saveLogs()
		}
	})
	opts, _ := topo.NATS.Credentials(natsauth.Developer).Options()
	c.nc, c.js, err = bus.Connect(context.Background(), topo.NATS.URL(), t.Name()+" as developer", slog.New(slog.DiscardHandler),
		append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	return c
}

// dumpLogs shows the end of every process's output, and keeps all of it in
// E2E_LOGS_DIR when that is set.
func (c *clusterSystem) dumpLogs() {
	for _, n := range c.saveLogs() {
		lines := strings.Split(strings.TrimSpace(c.logs[n].String()), "\n")
		if len(lines) > 150 {
			lines = lines[len(lines)-150:]
		}
		c.t.Logf("--- %s (last %d lines):\n%s", n, len(lines), strings.Join(lines, "\n"))
	}
}

// saveLogs keeps every process's output in E2E_LOGS_DIR when that is set, failed or
// not, and returns the processes' names in order.
func (c *clusterSystem) saveLogs() []string {
	names := slices.Sorted(maps.Keys(c.logs))
	if dir := os.Getenv("E2E_LOGS_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.t.Logf("E2E_LOGS_DIR: %v", err)
			return names
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n+".log"), []byte(c.logs[n].String()), 0o644); err != nil {
				c.t.Logf("E2E_LOGS_DIR: %v", err)
			}
		}
		c.t.Logf("every process's output is in %s", dir)
	}
	return names
}

// token is the bearer token of who: a demo role of the first firm, iyer-admin, or the
// platform operator.
func (c *clusterSystem) token(who string) string {
	c.t.Helper()
	var tok string
	var err error
	switch who {
	case "operator":
		tok, err = gateway.IssueOperatorToken(testOperatorSecret, "ops-cluster", "Ops On Call", "oncall@platform.example", time.Now(), time.Hour)
	case "iyer-admin":
		tok, err = gateway.IssueToken(testSecret, demo.UserIyerAdmin, time.Now(), time.Hour)
	default:
		tok, err = gateway.IssueToken(testSecret, demo.UsersByRole[who], time.Now(), time.Hour)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// call makes a request of gateway gw as who ("" for nobody).
func (c *clusterSystem) call(gw *topology.Service, who, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, strings.TrimSuffix(gw.URL(), "/")+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+c.token(who))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// leaderOf names the node that leads stream now, asking until one does.
func (c *clusterSystem) leaderOf(stream string) string {
	c.t.Helper()
	var leader string
	var err error
	if !poll(20*time.Second, 200*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var s jetstream.Stream
		if s, err = c.js.Stream(ctx, stream); err == nil && s.CachedInfo().Cluster != nil {
			leader = s.CachedInfo().Cluster.Leader
		}
		return leader != ""
	}) {
		c.t.Fatalf("no leader of %s within 20s: %v", stream, err)
	}
	return leader
}

// electionLine is nats-server's log line of a node that became the leader of a
// stream's or a consumer's raft group.
var electionLine = regexp.MustCompile(`^\[\d+\] (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) \[INF\] JetStream cluster new (?:stream|consumer) leader for '\$G > (.+)'$`)

// elections reads from the NATS nodes' logs which raft groups ("JOBS", "JOBS >
// run-x") had a new leader between from and to, and when each first had one.
func (c *clusterSystem) elections(from, to time.Time) map[string]time.Time {
	got := map[string]time.Time{}
	for _, n := range topology.NATSNodes {
		for line := range strings.SplitSeq(c.logs[n].String(), "\n") {
			m := electionLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			at, err := time.ParseInLocation("2006/01/02 15:04:05.000000", m[1], time.Local)
			if err != nil || at.Before(from) || at.After(to) {
				continue
			}
			if prev, ok := got[m[2]]; !ok || at.Before(prev) {
				got[m[2]] = at
			}
		}
	}
	return got
}

// quiet waits until the system has nothing left to do: no job has a current, queued
// or retried run, every job's consumers are empty, and the gateways have written every
// event. It fails after timeout, saying what is still busy.
func (c *clusterSystem) quiet(timeout time.Duration) {
	c.t.Helper()
	var busy string
	if !poll(timeout, 250*time.Millisecond, func() bool { busy = c.busy(); return busy == "" }) {
		c.t.Fatalf("the system is still busy %s after the load stopped: %s", timeout, busy)
	}
}

func (c *clusterSystem) busy() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		return err.Error()
	}
	consumers := []bus.ConsumerRef{{Stream: bus.StreamEvents, Name: bus.ConsumerGatewayEvents}}
	for _, job := range catalog.Names() {
		r, _, err := jobstate.Get[jobstate.Runs](ctx, kv, job)
		switch {
		case err != nil:
			return err.Error()
		case r.Current != nil || r.Next != nil || r.Retry != nil:
			return fmt.Sprintf("%s has a run current, queued or waiting for a retry: %+v", job, r)
		}
		consumers = append(consumers, bus.ConsumerRef{Stream: bus.StreamJobs, Name: bus.TriggerConsumer(job)}, bus.ConsumerRef{Stream: bus.StreamJobs, Name: bus.RunConsumer(job)})
	}
	for _, ref := range consumers {
		cons, err := c.js.Consumer(ctx, ref.Stream, ref.Name)
		if err != nil {
			return err.Error()
		}
		if ci := cons.CachedInfo(); ci.NumPending > 0 || ci.NumAckPending > 0 {
			return fmt.Sprintf("consumer %s has %d pending and %d unacknowledged", ref.Name, ci.NumPending, ci.NumAckPending)
		}
	}
	return ""
}

// jobEvents is everything JOBS_EVENTS holds: what the services said, in order.
type jobEvents struct {
	statuses []events.Status
	results  []events.Result
}

// readEvents reads JOBS_EVENTS from its first message to its last, by sequence, as the
// developer user may (nats stream get).
func (c *clusterSystem) readEvents() jobEvents {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := c.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		c.t.Fatal(err)
	}
	st := s.CachedInfo().State
	msgs := make([]*jetstream.RawStreamMsg, st.LastSeq+1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	seqs := make(chan uint64)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range seqs {
				m, err := s.GetMsg(ctx, seq)
				if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("sequence %d: %w", seq, err))
					mu.Unlock()
					continue
				}
				msgs[seq] = m
			}
		}()
	}
	for seq := st.FirstSeq; seq <= st.LastSeq; seq++ {
		seqs <- seq
	}
	close(seqs)
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatalf("reading %s: %v", bus.StreamEvents, errors.Join(errs...))
	}
	var ev jobEvents
	for _, m := range msgs {
		switch {
		case m == nil:
		case strings.HasPrefix(m.Subject, events.PrefixStatus):
			var s events.Status
			if err := json.Unmarshal(m.Data, &s); err != nil {
				c.t.Fatalf("status on %s is not JSON: %v", m.Subject, err)
			}
			ev.statuses = append(ev.statuses, s)
		case strings.HasPrefix(m.Subject, events.PrefixResult):
			var r events.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				c.t.Fatalf("result on %s is not JSON: %v", m.Subject, err)
			}
			ev.results = append(ev.results, r)
		}
	}
	return ev
}

// auditRuns counts the background_job_execution rows of each run.
func (c *clusterSystem) auditRuns() map[string]int {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(),
		`SELECT details->>'run_id', count(*) FROM audit_log WHERE action_type = 'background_job_execution' GROUP BY 1`)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			c.t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}
