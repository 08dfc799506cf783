package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/natstest"
)

// Tried: the cluster states a stream's info can report. Must hold: available with a
// leader in touch with a quorum (itself on one server; itself and one of two replicas
// on three), not without a leader, nor with a leader whose replicas have not answered
// it for seconds (it keeps its title for 10 to 20 seconds after losing its quorum).
func TestAvailabilityNeedsALeaderInTouchWithAQuorum(t *testing.T) {
	near := func(name string) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: name, Current: true, Active: 300 * time.Millisecond}
	}
	far := func(name string) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: name, Current: true, Active: 7 * time.Second}
	}
	for _, c := range []struct {
		name string
		ci   *jetstream.ClusterInfo
		want string // in the error; "" for available
	}{
		{"a single server", &jetstream.ClusterInfo{Leader: "solo"}, ""},
		{"no cluster information", nil, ""},
		{"three, all in touch", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{near("n2"), near("n3")}}, ""},
		{"three, one lost", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{near("n2"), far("n3")}}, ""},
		{"three, two lost", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{far("n2"), far("n3")}}, "in touch with 1 of 3 replicas, a quorum needs 2 (n2 last heard 7s ago, n3 last heard 7s ago)"},
		{"three, one behind and one offline", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{{Name: "n2", Active: time.Second}, {Name: "n3", Current: true, Offline: true}}}, "in touch with 1 of 3 replicas, a quorum needs 2 (n2 behind, last heard 1s ago, n3 offline)"},
		{"no leader", &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{near("n2"), near("n3")}}, "no leader"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := bus.NewAvailability(bus.Probe{Name: "JOBS", Info: func(context.Context) (*jetstream.ClusterInfo, error) { return c.ci, nil }})
			err := a.Check(context.Background())
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Check: %v; want available", err)
			case c.want != "" && (!errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), "JOBS: ") || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Check: %v; want ErrUnavailable naming JOBS and saying %q", err, c.want)
			}
		})
	}
}

// Tried: a readiness probe asked many times a second, and a probe that does not
// answer. Must hold: one round of requests answers every ask for two seconds, and a
// probe that does not answer within a second makes JetStream unavailable, saying so.
func TestAvailabilityIsCachedAndBounded(t *testing.T) {
	calls := 0
	a := bus.NewAvailability(bus.Probe{Name: "JOBS", Info: func(context.Context) (*jetstream.ClusterInfo, error) {
		calls++
		return &jetstream.ClusterInfo{Leader: "solo"}, nil
	}})
	for range 50 {
		if err := a.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Errorf("50 checks asked the servers %d times; want once", calls)
	}
	silent := bus.NewAvailability(bus.Probe{Name: "KV_jobs_runs", Info: func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	start := time.Now()
	err := silent.Check(context.Background())
	if !errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), "KV_jobs_runs: no answer within 1s") || time.Since(start) > 2*time.Second {
		t.Errorf("a probe that does not answer: %v after %s; want unavailable after a second", err, time.Since(start))
	}
}

// Tried: a three-server cluster with every stream at three replicas, then two of the
// servers shut down. Must hold: available while all are up, and unavailable, naming
// the streams, within a few seconds of losing the quorum, though the remaining server
// still answers info requests.
func TestAvailabilityOfAClusterThatLosesItsQuorum(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	// The probes' client talks to the server that stays.
	_, js := natstest.Connect(t, c.Servers[0].ClientURL())
	probe := func() *bus.Availability {
		return bus.NewAvailability(bus.StreamProbe(js, bus.StreamJobs), bus.StreamProbe(js, "KV_"+bus.BucketRuns))
	}
	if err := probe().Check(context.Background()); err != nil {
		t.Fatalf("a formed cluster: %v", err)
	}
	for _, s := range c.Servers[1:] {
		s.Shutdown()
	}
	lost := time.Now()
	// Nothing announces the lost quorum to a client: Check is asked until it sees it.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var err error
	for err == nil {
		if time.Since(lost) > 15*time.Second {
			t.Fatal("still available 15s after two of three servers went away")
		}
		<-tick.C
		err = probe().Check(context.Background())
	}
	t.Logf("unavailable %s after losing the quorum: %v", time.Since(lost).Round(100*time.Millisecond), err)
	if !errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), bus.StreamJobs) {
		t.Errorf("Check: %v; want ErrUnavailable naming %s", err, bus.StreamJobs)
	}
}
