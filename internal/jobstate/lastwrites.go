package jobstate

import (
	"context"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// LastWrites returns b with its reads answered, when it can, by the last write of the
// key that went through it, without asking the server: the value it wrote and the
// revision the server gave that write. A key it has not written, or whose last write
// through it failed (a lost compare-and-set above all), is read from b.
//
// The answer may be behind: another process may have written the key since. That
// costs no correctness where every decision is written back with a compare-and-set on
// the revision read (Decide): the server checks that revision against the key's last,
// so a decision taken on an answer that is behind fails its write, the key is
// forgotten, and the decision is taken again on a read from b. It is the same check
// that catches a leader read overtaken by another writer between the read and the
// write. What it saves is a round trip per decision whenever this process wrote the key
// last, which on a single worker is every time: the executor's claim reads what the
// intake's join wrote, the finish what the claim wrote.
//
// For decisions only: a read that decides nothing by itself, such as the sweep's look
// for lost orders, must read b.
func LastWrites(b Bucket) Bucket { return &lastWrites{inner: b, last: map[string]*entry{}} }

type lastWrites struct {
	inner Bucket
	mu    sync.Mutex
	last  map[string]*entry
}

func (l *lastWrites) Bucket() string { return l.inner.Bucket() }

func (l *lastWrites) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	l.mu.Lock()
	e := l.last[key]
	l.mu.Unlock()
	if e != nil {
		return e, nil
	}
	return l.inner.Get(ctx, key)
}

func (l *lastWrites) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := l.inner.Create(ctx, key, value, opts...)
	l.wrote(key, value, rev, err)
	return rev, err
}

func (l *lastWrites) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := l.inner.Update(ctx, key, value, revision)
	l.wrote(key, value, rev, err)
	return rev, err
}

// wrote remembers a write that the server took, or forgets the key after one it
// refused or may not have taken. Of two writes racing through here (the intake's and
// the executor's), the later revision is the one kept.
func (l *lastWrites) wrote(key string, value []byte, rev uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		delete(l.last, key)
		return
	}
	if e := l.last[key]; e != nil && e.revision > rev {
		return
	}
	l.last[key] = &entry{bucket: l.inner.Bucket(), key: key, value: slices.Clone(value), revision: rev}
}
