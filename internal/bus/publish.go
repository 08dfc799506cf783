package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AttemptTimeout bounds one request to JetStream inside a retrying call (Publish,
// jobstate's reads and compare-and-sets). A request sent to a stream or consumer whose
// leader is being elected is never answered; bounded, it is sent again soon after the
// new leader is elected (within seconds when a node is lost) instead of waiting out
// the caller's whole deadline.
const AttemptTimeout = 2 * time.Second

// Unavailable tells a failure of JetStream that passes within seconds, so that the
// call is worth making again: no answer in time, no responders, the server's 503
// ("JetStream system temporarily unavailable" while a leader is elected or a quorum is
// lost), a connection being re-established.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Pause waits a moment before a retry of a call that failed with Unavailable, or until
// ctx ends.
func Pause(ctx context.Context) error { return Sleep(ctx, 100*time.Millisecond) }

// Sleep waits d, or until ctx ends, and says which.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Publish publishes data on subject with msgID as its message id until JetStream
// confirms it, or budget is over, or ctx ends. Every attempt is bounded by
// AttemptTimeout, and the message id makes every attempt after the first harmless:
// JetStream keeps one copy within its dedupe window. maybeStored says, on failure,
// whether an attempt that got no answer may have stored the message all the same (a
// leader that stored it and lost its connection before it answered); a refusal did
// not store it.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string, budget time.Duration) (maybeStored bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, AttemptTimeout)
		_, err = js.Publish(actx, subject, data, jetstream.WithMsgID(msgID))
		acancel()
		if err == nil {
			return false, nil
		}
		var apiErr *jetstream.APIError
		if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) && !errors.As(err, &apiErr) {
			maybeStored = true
		}
		if !Unavailable(err) || Pause(ctx) != nil {
			return maybeStored, err
		}
	}
}
