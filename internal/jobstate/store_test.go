package jobstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natstest"
)

const key = "check-sla-and-overdue"

func runsBucket(t *testing.T) (*natstest.Server, jetstream.KeyValue) {
	t.Helper()
	srv := natstest.Start(t)
	kv, err := srv.JS.KeyValue(context.Background(), bus.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	return srv, kv
}

// A leader read answers what the bucket's own Get answers: value and revision of the
// latest write, "not found" for a key never written or deleted.
func TestLeaderReadsAnswerLikeGet(t *testing.T) {
	ctx := context.Background()
	srv, kv := runsBucket(t)
	lr := jobstate.LeaderReads(srv.JS, kv)

	if _, err := lr.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("leader read of a key never written: %v, want ErrKeyNotFound", err)
	}
	for _, v := range []string{`{"next":{"run_id":"a"}}`, `{"next":{"run_id":"b"}}`} {
		if _, err := kv.Put(ctx, key, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	want, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lr.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value()) != string(want.Value()) || got.Revision() != want.Revision() || got.Key() != key || got.Bucket() != bus.BucketRuns {
		t.Fatalf("leader read = %s@%d (%s/%s), want %s@%d", got.Value(), got.Revision(), got.Bucket(), got.Key(), want.Value(), want.Revision())
	}
	runs, rev, err := jobstate.Get[jobstate.Runs](ctx, lr, key)
	if err != nil || rev != want.Revision() || runs.Next == nil || runs.Next.RunID != "b" {
		t.Fatalf("jobstate.Get through a leader read = %+v@%d, %v", runs, rev, err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := lr.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("leader read of a deleted key: %v, want ErrKeyNotFound", err)
	}
}

// Decide writes the record back even when the decision changed nothing: that write is
// the check that the decision was taken on the latest record.
func TestDecideChecksADecisionThatChangesNothing(t *testing.T) {
	ctx := context.Background()
	_, kv := runsBucket(t)
	if _, err := kv.Put(ctx, key, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	before, _ := kv.Get(ctx, key)
	v, _, err := jobstate.Decide(ctx, kv, key, func(r *jobstate.Runs) jobstate.Claimed {
		return r.Claim(jobstate.Order{RunID: "gone", Seq: 3}, 1, t0)
	})
	if err != nil || v.Verdict != jobstate.Drop {
		t.Fatalf("Decide = %v, %v; want a drop", v.Verdict, err)
	}
	after, _ := kv.Get(ctx, key)
	if after.Revision() <= before.Revision() {
		t.Fatalf("revision %d after a decision on revision %d: the unchanged record must be written back", after.Revision(), before.Revision())
	}
}

// The runs bucket says run x is queued; the read serves the record from before x was
// queued, as a follower that has not applied the write would. Decided on that read
// alone (Update returning ErrNoChange), the order for x is dropped: that was the stuck
// run of issue 10. Decide's write-back fails its compare-and-set on the stale revision,
// and the decision is taken again on the latest record: x starts.
func TestDecideOnAStaleReadIsTakenAgainOnTheLatest(t *testing.T) {
	ctx := context.Background()
	_, kv := runsBucket(t)
	if _, err := kv.Put(ctx, key, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	queueX := func() {
		t.Helper()
		if _, err := jobstate.Update(ctx, kv, key, func(r *jobstate.Runs) error {
			r.Join(ref("a"), events.ScopeAll(), "x", t0)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	claimX := func(r *jobstate.Runs) jobstate.Claimed { return r.Claim(jobstate.Order{RunID: "x", Seq: 1}, 1, t0) }

	t.Run("decided on the read alone, the order is dropped", func(t *testing.T) {
		lag := natstest.NewLaggingReads(kv)
		if err := lag.Lag(ctx, key); err != nil {
			t.Fatal(err)
		}
		queueX()
		var verdict jobstate.Verdict
		if _, err := jobstate.Update(ctx, lag, key, func(r *jobstate.Runs) error {
			if verdict = claimX(r).Verdict; verdict == jobstate.Drop {
				return jobstate.ErrNoChange
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(lag.Stale()) != 1 || verdict != jobstate.Drop {
			t.Fatalf("stale reads %d, verdict %v: the stale read must have been served and have led to a drop", len(lag.Stale()), verdict)
		}
	})

	if _, err := kv.Put(ctx, key, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	t.Run("decided with Decide, the run starts", func(t *testing.T) {
		lag := natstest.NewLaggingReads(kv)
		if err := lag.Lag(ctx, key); err != nil {
			t.Fatal(err)
		}
		queueX()
		var decisions []jobstate.Verdict
		c, rec, err := jobstate.Decide(ctx, lag, key, func(r *jobstate.Runs) jobstate.Claimed {
			c := claimX(r)
			decisions = append(decisions, c.Verdict)
			return c
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-lag.Stale():
		case <-time.After(time.Second):
			t.Fatal("the stale record was never served; the test did not test anything")
		}
		if len(decisions) != 2 || decisions[0] != jobstate.Drop || c.Verdict != jobstate.Start {
			t.Fatalf("decisions %v, final %v; want a drop on the stale read, then a start on the latest", decisions, c.Verdict)
		}
		if rec.Current == nil || rec.Current.RunID != "x" || rec.Next != nil {
			t.Fatalf("record after the claim = %+v; want x current, nothing queued", rec)
		}
	})
}

// LastWrites answers a decision's read with the process's own last write, asking the
// server nothing; when another writer wrote in between, the decision taken on that
// answer fails its compare-and-set and is taken again on a read from the server.
func TestLastWritesSavesTheReadAndACheckCatchesAnotherWriter(t *testing.T) {
	ctx := context.Background()
	_, kv := runsBucket(t)
	reads := &countingReads{KeyValue: kv}
	lw := jobstate.LastWrites(reads)

	// The intake's join reads the server (nothing written through lw yet) ...
	if _, _, err := jobstate.Decide(ctx, lw, key, func(r *jobstate.Runs) jobstate.Joined {
		return r.Join(ref("a"), events.ScopeAll(), "x", t0)
	}); err != nil {
		t.Fatal(err)
	}
	// ... the executor's claim reads the join it wrote.
	c, _, err := jobstate.Decide(ctx, lw, key, func(r *jobstate.Runs) jobstate.Claimed {
		return r.Claim(jobstate.Order{RunID: "x", Seq: 1}, 1, t0)
	})
	if err != nil || c.Verdict != jobstate.Start {
		t.Fatalf("claim = %v, %v; want a start", c.Verdict, err)
	}
	if reads.n != 1 {
		t.Fatalf("%d reads of the server for a join and a claim by one process; want 1 (the join's)", reads.n)
	}

	// Another process queues y behind x.
	if _, err := jobstate.Update(ctx, kv, key, func(r *jobstate.Runs) error {
		r.Join(ref("b"), events.ScopeAll(), "y", t0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The claim of y, on lw's answer (x current, nothing queued), would drop y's order;
	// that decision fails its write, and the one taken on the server's read starts y.
	var decisions []jobstate.Verdict
	c, rec, err := jobstate.Decide(ctx, lw, key, func(r *jobstate.Runs) jobstate.Claimed {
		c := r.Claim(jobstate.Order{RunID: "y", Seq: 2}, 1, t0)
		decisions = append(decisions, c.Verdict)
		return c
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(decisions) != 2 || decisions[0] != jobstate.Drop || c.Verdict != jobstate.Start || rec.Current == nil || rec.Current.RunID != "y" {
		t.Fatalf("decisions %v, final %v, record %+v; want a drop on the answer from behind, then y started", decisions, c.Verdict, rec)
	}
	if reads.n != 2 {
		t.Fatalf("%d reads of the server; want 2 (the join's, and the one after the lost compare-and-set)", reads.n)
	}
}

// countingReads counts the reads that reach the bucket.
type countingReads struct {
	jetstream.KeyValue
	n int
}

func (c *countingReads) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	c.n++
	return c.KeyValue.Get(ctx, key)
}
