package jobstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaderReads returns kv with its Get answered by the bucket's stream leader.
//
// Buckets are created with direct get allowed, and jetstream.KeyValue.Get then asks
// $JS.API.DIRECT.GET, which every replica answers from its own store: the client's own
// server first, so a follower that has not yet applied the latest write answers with
// the record before it. $JS.API.STREAM.MSG.GET is answered by the stream leader only,
// which acknowledges a write only once it has stored it. Writes (Create, Update) are
// kv's own: compare-and-sets, checked by the leader.
func LeaderReads(js jetstream.JetStream, kv jetstream.KeyValue) Bucket {
	return &leaderReads{KeyValue: kv, nc: js.Conn(), api: apiPrefix(js.Options())}
}

type leaderReads struct {
	jetstream.KeyValue
	nc  *nats.Conn
	api string
}

func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// The names a bucket's stream and its keys' subjects have (ADR-8).
const (
	kvStreamPrefix  = "KV_"
	kvSubjectPrefix = "$KV."
)

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

func (l *leaderReads) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if key == "" || strings.ContainsAny(key, " *>") {
		return nil, jetstream.ErrInvalidKey
	}
	bucket := l.Bucket()
	req, err := json.Marshal(map[string]string{"last_by_subj": kvSubjectPrefix + bucket + "." + key})
	if err != nil {
		return nil, err
	}
	msg, err := l.nc.RequestWithContext(ctx, l.api+"STREAM.MSG.GET."+kvStreamPrefix+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("leader get: %w", err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("leader get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrKeyNotFound
		}
		return nil, fmt.Errorf("leader get: %w", resp.Error)
	}
	if resp.Message == nil {
		return nil, errors.New("leader get: empty answer")
	}
	m := resp.Message
	e := &entry{bucket: bucket, key: key, value: m.Data, revision: m.Sequence, created: m.Time}
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("leader get: headers: %w", err)
		}
		// A delete or purge marker (or the server's marker for one) is a missing key, as
		// in jetstream.KeyValue.Get.
		switch op := h.Get("KV-Operation"); {
		case op == "DEL" || op == "PURGE":
			return nil, jetstream.ErrKeyNotFound
		case op == "" && h.Get(jetstream.MarkerReasonHeader) != "":
			return nil, jetstream.ErrKeyNotFound
		}
	}
	return e, nil
}

type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.revision }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return 0 }
func (e *entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
