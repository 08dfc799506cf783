package gateway

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// What one person may ask of a gateway, in one place.
//
// Run Now: triggers coalesce (any number of presses during a run cause at most one
// further run), so pressing it more than a few times a minute changes nothing but the
// length of audit_log; a stuck key or a script in a loop must not write thousands of
// rows or triggers. Three presses at once are accepted, then one more every 12 s: 5 a
// minute. Beyond it POST /api/jobs/{job}/run answers 429 with Retry-After and stores
// nothing.
//
// Websockets: a person's dashboards in a few tabs, windows and a phone stay live; a
// further one closes the person's oldest (CloseTooManySockets), so the tab the person
// just opened is the one that works, and a script opening sockets in a loop holds at
// most this many.
//
// Both are per gateway replica: behind a load balancer over N replicas a person may
// reach N times as much.
const (
	RunNowBurst       = 3
	RunNowRefill      = 12 * time.Second
	MaxSocketsPerUser = 8
)

// The Run Now limiter's memory: a person idle for a minute (bucket full again, no press
// in the last minute) is forgotten at the next sweep; at most limiterMaxUsers are
// remembered, and past that arbitrary ones are forgotten (each then gets a fresh
// burst: the bound on memory wins over the bound on presses). Each remembers at most
// pressMemory presses, for the refusal's words.
const (
	limiterMaxUsers = 10_000
	pressMemory     = 20
	pressWindow     = time.Minute
)

// runNowLimiter is a token bucket per person (Principal.UserID), kept as the time
// at which the person's bucket is full again (GCRA), so that it is exact in integer
// time: a press at now is accepted while full - now ≤ (RunNowBurst-1)·RunNowRefill.
type runNowLimiter struct {
	mu        sync.Mutex
	users     map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	full    time.Time   // when the bucket holds RunNowBurst presses again
	presses []time.Time // the presses within pressWindow, at most pressMemory
}

const burstTolerance = (RunNowBurst - 1) * RunNowRefill

func (b *bucket) idle(now time.Time) bool {
	return !now.Before(b.full) && (len(b.presses) == 0 || now.Sub(b.presses[len(b.presses)-1]) >= pressWindow)
}

// refusal is why a press was refused: when to try again and how often it was pressed.
type refusal struct {
	wait    time.Duration
	presses int // within the last minute, this one included; pressMemory means at least
}

// RetryAfter is the wait in whole seconds, rounded up (the Retry-After header).
func (r refusal) RetryAfter() int { return max(1, int(math.Ceil(r.wait.Seconds()))) }

func (r refusal) Error() string {
	times := fmt.Sprintf("%d times", r.presses)
	if r.presses >= pressMemory {
		times = fmt.Sprintf("at least %d times", pressMemory)
	}
	return fmt.Sprintf("You have pressed Run Now %s in the last minute; try again in %d s. Runs already queued will still run.", times, r.RetryAfter())
}

// allow takes a press for user at now, or says why not.
func (l *runNowLimiter) allow(user string, now time.Time) (refusal, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = map[string]*bucket{}
	}
	if now.Sub(l.lastSweep) >= pressWindow {
		l.sweep(now)
	}
	b := l.users[user]
	if b == nil {
		// Full of people active within the last minute (the idle ones are swept
		// every minute, above): forget someone.
		for u := range l.users {
			if len(l.users) < limiterMaxUsers {
				break
			}
			delete(l.users, u)
		}
		b = &bucket{full: now}
		l.users[user] = b
	}
	kept := b.presses[:0]
	for _, t := range b.presses {
		if now.Sub(t) < pressWindow {
			kept = append(kept, t)
		}
	}
	b.presses = append(kept, now)
	if len(b.presses) > pressMemory {
		b.presses = b.presses[len(b.presses)-pressMemory:]
	}
	full := b.full
	if full.Before(now) {
		full = now
	}
	if wait := full.Sub(now) - burstTolerance; wait > 0 {
		return refusal{wait: wait, presses: len(b.presses)}, false
	}
	b.full = full.Add(RunNowRefill)
	return refusal{}, true
}

// sweep forgets the people who have been idle for a minute.
func (l *runNowLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for u, b := range l.users {
		if b.idle(now) {
			delete(l.users, u)
		}
	}
}

func (l *runNowLimiter) remembered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}
