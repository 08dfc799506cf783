package bus_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
)

func TestIsConflict(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"single server: wrong last sequence", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{"replicated stream: wrong last sequence", fmt.Errorf("write: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{"create of a key that exists", fmt.Errorf("%w: key exists", jetstream.ErrKeyExists), true},
		{"update on a stale revision", fmt.Errorf("%w: %w", errors.New("wrong last sequence"), jetstream.ErrKeyRevisionMismatch), true},
		{"stream not found", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound}, false},
		{"timeout", errors.New("context deadline exceeded"), false},
	} {
		if got := bus.IsConflict(c.err); got != c.want {
			t.Errorf("%s: IsConflict(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
