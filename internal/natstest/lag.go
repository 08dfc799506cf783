package natstest

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/jobstate"
)

// LaggingReads wraps a real bucket so that, on cue, a read is answered as a replica one
// write behind would answer it: after Lag(key), the first Get of key that finds a newer
// revision than the key had at Lag returns the entry it had at Lag instead (or "not
// found", if it had none). Every other read, and every write, is the real bucket's.
//
// This is the read a follower that has not applied the leader's latest write serves to a
// direct get, made to happen at the one moment a test needs it.
type LaggingReads struct {
	inner jobstate.Bucket
	mu    sync.Mutex
	held  map[string]jetstream.KeyValueEntry // nil entry: the key did not exist
	armed map[string]bool
	stale chan jetstream.KeyValueEntry
}

// NewLaggingReads wraps b.
func NewLaggingReads(b jobstate.Bucket) *LaggingReads {
	return &LaggingReads{inner: b, held: map[string]jetstream.KeyValueEntry{}, armed: map[string]bool{},
		stale: make(chan jetstream.KeyValueEntry, 16)}
}

// Lag remembers key as it is now and arms one stale answer.
func (l *LaggingReads) Lag(ctx context.Context, key string) error {
	e, err := l.inner.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		e, err = nil, nil
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[key], l.armed[key] = e, true
	return nil
}

// Stale delivers each stale answer served (nil: "not found"), so a test can wait for it.
func (l *LaggingReads) Stale() <-chan jetstream.KeyValueEntry { return l.stale }

func (l *LaggingReads) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := l.inner.Get(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return e, err
	}
	l.mu.Lock()
	held, armed := l.held[key], l.armed[key]
	newer := err == nil && (held == nil || e.Revision() > held.Revision())
	if armed && newer {
		l.armed[key] = false
	}
	l.mu.Unlock()
	if !armed || !newer {
		return e, err
	}
	select {
	case l.stale <- held:
	default:
	}
	if held == nil {
		return nil, jetstream.ErrKeyNotFound
	}
	return held, nil
}

func (l *LaggingReads) Bucket() string { return l.inner.Bucket() }

func (l *LaggingReads) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return l.inner.Create(ctx, key, value, opts...)
}

func (l *LaggingReads) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return l.inner.Update(ctx, key, value, revision)
}

// MostBehind wraps a bucket whose Get is a direct get (a jetstream.KeyValue) so that
// each read is answered by the replica furthest behind among n asked: it makes n direct
// gets and returns the oldest revision. Every replica answers direct gets, one picked
// at random per request; a follower behind answers only some of them. With MostBehind
// it answers nearly all, as when only a lagging follower is close to the reader.
func MostBehind(kv jetstream.KeyValue, n int) jobstate.Bucket { return &mostBehind{kv, n} }

type mostBehind struct {
	jetstream.KeyValue
	n int
}

func (m *mostBehind) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	var oldest jetstream.KeyValueEntry
	var missing bool
	for range m.n {
		e, err := m.KeyValue.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			missing = true
		case err != nil:
			return nil, err
		case oldest == nil || e.Revision() < oldest.Revision():
			oldest = e
		}
	}
	if missing || oldest == nil {
		return nil, jetstream.ErrKeyNotFound
	}
	return oldest, nil
}
