package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jonboulle/clockwork"
)

// What is tried: dashboards of one firm ask for a snapshot together, again later, after
// a change, and after snapshotTTL; a dashboard of another firm asks too.
// What must hold: dashboards asking together share one build; a snapshot is reused
// only while nothing changed and for at most snapshotTTL; each group has its own.
func TestSnapshotsAreSharedWhileNothingChanges(t *testing.T) {
	clock := clockwork.NewFakeClock()
	s := newSnapshotCache(clock)
	var builds atomic.Int64
	started, release := make(chan struct{}, 1), make(chan struct{})
	build := func(_ context.Context, v Viewer) ([]byte, error) {
		builds.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return []byte(`{"type":"snapshot","for":"` + v.key() + `"}`), nil
	}
	mehta, iyer := Viewer{TenantID: "mehta"}, Viewer{TenantID: "iyer"}
	get := func(v Viewer) {
		t.Helper()
		if _, err := s.get(v, build); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { get(mehta) })
	}
	// Those that ask while the first build runs wait for it; those that ask after it
	// get what it built.
	<-started
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("50 dashboards asking together: %d builds, want 1", n)
	}
	get(mehta)
	if n := builds.Load(); n != 1 {
		t.Fatalf("asked again with nothing changed: %d builds, want 1", n)
	}
	get(iyer)
	if n := builds.Load(); n != 2 {
		t.Fatalf("another firm: %d builds, want 2 (its own)", n)
	}
	s.changed()
	get(mehta)
	if n := builds.Load(); n != 3 {
		t.Fatalf("after a change: %d builds, want 3", n)
	}
	clock.Advance(snapshotTTL)
	get(mehta)
	if n := builds.Load(); n != 4 {
		t.Fatalf("after snapshotTTL: %d builds, want 4", n)
	}
}
