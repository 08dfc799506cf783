package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable is JetStream unable to store or hand out what a service needs: no
// answer, or a stream or consumer without a leader, or a leader that is not in touch
// with a quorum of its replicas (on a cluster that lost too many nodes).
var ErrUnavailable = errors.New("JetStream is unavailable")

// inTouch is how recently a replica must have answered its leader to count towards a
// quorum. Leaders hear from their followers every second even when idle; a leader
// cut off from its quorum keeps its title for 10 to 20 seconds before it steps down,
// answering info requests all the while, and stores nothing in that time.
const inTouch = 5 * time.Second

// Probe asks for one stream's or consumer's cluster state: its name and the
// jetstream ClusterInfo (nil on a single server).
type Probe struct {
	Name string
	Info func(ctx context.Context) (*jetstream.ClusterInfo, error)
}

// StreamProbe is the state of stream (KV_<bucket> for a bucket).
func StreamProbe(js jetstream.JetStream, stream string) Probe {
	return Probe{Name: stream, Info: func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, err
		}
		return s.CachedInfo().Cluster, nil
	}}
}

// ConsumerProbe is the state of a durable consumer.
func ConsumerProbe(js jetstream.JetStream, stream, consumer string) Probe {
	return Probe{Name: stream + " consumer " + consumer, Info: func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return nil, err
		}
		return c.CachedInfo().Cluster, nil
	}}
}

// Availability answers readiness probes and health checks with whether JetStream can
// do the service's work now, not only whether a connection is up: each of its probes
// must answer within a second with a leader in touch with a quorum. The answer is
// kept for two seconds, so that probes do not hammer the servers; concurrent askers
// share one round of requests.
type Availability struct {
	probes []Probe
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	at      time.Time
	err     error
	pending chan struct{} // closed when the round in progress ends
}

// NewAvailability checks probes.
func NewAvailability(probes ...Probe) *Availability {
	return &Availability{probes: probes, ttl: 2 * time.Second, now: time.Now}
}

// Check is nil when JetStream is available, else an ErrUnavailable that says what is
// missing.
func (a *Availability) Check(ctx context.Context) error {
	a.mu.Lock()
	if !a.at.IsZero() && a.now().Sub(a.at) < a.ttl {
		err := a.err
		a.mu.Unlock()
		return err
	}
	if wait := a.pending; wait != nil {
		a.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.err
	}
	done := make(chan struct{})
	a.pending = done
	a.mu.Unlock()

	err := a.round(context.WithoutCancel(ctx))
	a.mu.Lock()
	a.at, a.err, a.pending = a.now(), err, nil
	a.mu.Unlock()
	close(done)
	return err
}

func (a *Availability) round(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	problems := make([]string, len(a.probes))
	var wg sync.WaitGroup
	for i, p := range a.probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ci, err := p.Info(ctx)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				problems[i] = p.Name + ": no answer within 1s"
			case err != nil:
				problems[i] = p.Name + ": " + err.Error()
			default:
				problems[i] = quorumProblem(p.Name, ci)
			}
		}()
	}
	wg.Wait()
	var out []string
	for _, p := range problems {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(out, "; "))
}

// quorumProblem says why a stream or consumer cannot take writes, or "" if it can: it
// has a leader, and the leader and the replicas that answered it lately are a
// majority of its replicas.
func quorumProblem(name string, ci *jetstream.ClusterInfo) string {
	if ci == nil || len(ci.Replicas) == 0 && ci.Leader != "" {
		return "" // a single server, or one replica
	}
	if ci.Leader == "" {
		return name + ": no leader (too few NATS servers are up to elect one)"
	}
	size, up := 1+len(ci.Replicas), 1
	var lost []string
	for _, r := range ci.Replicas {
		if r.Current && !r.Offline && r.Active < inTouch {
			up++
			continue
		}
		why := "last heard " + r.Active.Round(100*time.Millisecond).String() + " ago"
		switch {
		case r.Offline:
			why = "offline"
		case !r.Current:
			why = "behind, " + why
		}
		lost = append(lost, r.Name+" "+why)
	}
	if up > size/2 {
		return ""
	}
	return fmt.Sprintf("%s: its leader %s is in touch with %d of %d replicas, a quorum needs %d (%s)", name, ci.Leader, up, size, size/2+1, strings.Join(lost, ", "))
}
