package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/jobstate"
	"github.com/lexhq/gstjobs/internal/natstest"
)

// A hold makes a follower fall behind for real: while the leader's replication to it is
// held, the follower answers a direct get with the revision before the latest write (as
// in issue 10), a leader read never does; after the release the follower catches up.
func TestHoldMakesAFollowerFallBehind(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	stream := "KV_" + bus.BucketRuns
	leader := c.StreamLeader(stream)
	if leader == "" {
		t.Fatal("the runs bucket has no leader")
	}
	var follower string
	for _, s := range c.Servers {
		if s.Name() != leader {
			follower = s.Name()
			break
		}
	}
	ctx := context.Background()
	_, viaLeader := natstest.Connect(t, c.Server(leader).ClientURL())
	_, viaFollower := natstest.Connect(t, c.Server(follower).ClientURL())
	kvL, err := viaLeader.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	kvF, err := viaFollower.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	before, err := kvL.Put(ctx, "k", []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, kvF, before)

	release := c.Hold(leader, follower)
	defer release()
	// The follower's clients still write: their messages reach the leader on the
	// client route, and the third server makes the quorum.
	latest, err := kvF.Put(ctx, "k", []byte("latest"))
	if err != nil {
		t.Fatalf("write through the follower while it is behind: %v", err)
	}
	// Every replica answers direct gets, in a queue group, any member at random; so
	// ask until the follower itself answers.
	stale := false
	for range 50 {
		e, err := kvF.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if e.Revision() == before && string(e.Value()) == "before" {
			stale = true
			break
		}
		if e.Revision() != latest {
			t.Fatalf("direct get = %s@%d; want before@%d or latest@%d", e.Value(), e.Revision(), before, latest)
		}
	}
	if !stale {
		t.Fatalf("50 direct gets through the held follower all answered the latest revision %d; it never answered from behind", latest)
	}
	le, err := jobstate.LeaderReads(viaLeader, kvL).Get(ctx, "k")
	if err != nil || le.Revision() != latest {
		t.Fatalf("leader read = %v, %v; want revision %d", le, err, latest)
	}
	release()
	waitRevision(t, kvF, latest)
}

// waitRevision waits until a direct get through kv answers rev; a watch through the
// same server reports each revision as that server stores it.
func waitRevision(t *testing.T, kv jetstream.KeyValue, rev uint64) {
	t.Helper()
	w, err := kv.Watch(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	deadline := time.After(10 * time.Second)
	for {
		if e, err := kv.Get(context.Background(), "k"); err == nil && e.Revision() >= rev {
			return
		}
		select {
		case <-w.Updates():
		case <-deadline:
			t.Fatalf("the follower never reached revision %d", rev)
		}
	}
}
