package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

// An open websocket outlives the request that opened it by hours (a development link's
// token lasts 12), while the person behind it may be demoted, removed or signed out in
// the meantime. So every SessionCheckEvery the gateway looks again, for every socket:
//
//   - its token was not signed out (memory: the revocations below);
//   - its profile still exists, still belongs to the same firm, and its role may still
//     watch (admin or partner): one query for every person connected to this replica,
//     however many sockets each has.
//
// A socket that fails is closed with a code the dashboard explains. The check runs in
// its own goroutine, apart from the live feed: status and result frames never wait on
// it. The platform operator has no profile; their sockets close when the token expires
// or is signed out.

// Close codes of the dashboard's websocket, each explained by web/app.js.
const (
	// CloseSessionExpired: the token expired; sign in again.
	CloseSessionExpired = 4001
	// CloseSignedOut: the token was signed out (POST /signout), in this browser or in
	// another that had the same token.
	CloseSignedOut = 4002
	// CloseAccessChanged: the person may no longer watch: their role is no longer
	// admin or partner, their profile was removed, or it moved to another firm. The
	// reason reads "your access changed: …".
	CloseAccessChanged = 4003
	// CloseTooManySockets: the person opened more than MaxSocketsPerUser dashboards,
	// and this was the oldest.
	CloseTooManySockets = 4008
)

// DefaultSessionCheckEvery is how often open websockets are re-checked. A change of
// access is seen within this plus the check's query timeout: 25 s, within the 30 s
// the dashboard promises.
const DefaultSessionCheckEvery = 15 * time.Second

// sessionQueryTimeout bounds one session check's query.
const sessionQueryTimeout = 10 * time.Second

var (
	sessionExpired  = closeReason{code: CloseSessionExpired, text: "session expired: sign in again", metric: "expired"}
	signedOutSocket = closeReason{code: CloseSignedOut, text: "signed out", metric: "signed_out"}
	tooManySockets  = closeReason{code: CloseTooManySockets, metric: "too_many_per_user",
		text: fmt.Sprintf("more than %d dashboards open for you: this one, the oldest, was closed", MaxSocketsPerUser)}
	tooSlow = closeReason{code: websocket.CloseTryAgainLater, text: "too slow; reconnect for a fresh snapshot", metric: "too_slow"}
)

func accessChanged(detail string) closeReason {
	return closeReason{code: CloseAccessChanged, text: "your access changed: " + detail, metric: "access_changed"}
}

// tokenHash names a token without holding it: revocations are kept and sent to the
// other replicas by hash, so neither memory nor NATS carries a usable token.
type tokenHash [sha256.Size]byte

func hashToken(raw string) tokenHash { return sha256.Sum256([]byte(raw)) }

// session is who opened a websocket, and with which token.
type session struct {
	userID   string // Principal.UserID: a profile id, or "operator:<id>"
	tenantID string
	token    tokenHash
}

func newSession(p Principal, raw string) session {
	return session{userID: p.UserID, tenantID: p.TenantID, token: hashToken(raw)}
}

// profileNow is a profile as the session check reads it.
type profileNow struct {
	tenantID, role string
}

// accessNow says whether the person behind a socket may still watch, given their
// profile as it is now (found false: there is no such profile any more).
func accessNow(s session, p profileNow, found bool) (closeReason, bool) {
	switch {
	case !found:
		return accessChanged("your profile was removed"), true
	case p.tenantID != s.tenantID:
		return accessChanged("your profile moved to another firm"), true
	case !(Principal{Role: p.role}).CanView():
		return accessChanged("your role is now " + Principal{Role: p.role}.RoleName()), true
	}
	return closeReason{}, false
}

const sessionProfilesQuery = `SELECT id::text, tenant_id::text, role FROM profiles WHERE id = ANY($1::uuid[])`

// checkSessions is one session check: signed-out tokens first (memory only), then one
// query for the profiles of everyone connected.
func (g *Gateway) checkSessions(ctx context.Context) error {
	now := g.cfg.Clock.Now()
	g.revoked.prune(now)
	g.hub.closeWhere(func(c *client) (closeReason, bool) {
		return signedOutSocket, g.revoked.has(c.session.token, now)
	})
	ids := g.hub.profileIDs()
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, sessionQueryTimeout)
	defer cancel()
	rows, err := g.cfg.Pool.Query(ctx, sessionProfilesQuery, ids)
	if err != nil {
		return fmt.Errorf("session check: read profiles: %w", err)
	}
	current := make(map[string]profileNow, len(ids))
	var id string
	var p profileNow
	if _, err := pgx.ForEachRow(rows, []any{&id, &p.tenantID, &p.role}, func() error {
		current[id] = p
		return nil
	}); err != nil {
		return fmt.Errorf("session check: read profiles: %w", err)
	}
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	closed := g.hub.closeWhere(func(c *client) (closeReason, bool) {
		// A socket opened after the query began is judged at the next check.
		if c.viewer.Operator || !asked[c.session.userID] {
			return closeReason{}, false
		}
		p, found := current[c.session.userID]
		return accessNow(c.session, p, found)
	})
	if n := closed[accessChanged("").metric]; n > 0 {
		g.log.Info("websockets closed: their people's access changed", "sockets", n)
	}
	return nil
}

// sessionLoop runs the session check every SessionCheckEvery until the gateway stops.
//
// When the database cannot be read, the sockets stay open and the next tick checks
// again: an outage says nothing about anyone's access, and closing every dashboard
// then would leave people blind exactly while something is wrong (their live frames go
// on without the database, and a reconnect would fail its snapshot). A change of
// access made before the outage is acted on at the first check after it.
func (g *Gateway) sessionLoop(t interface{ Chan() <-chan time.Time }) {
	failing := false
	for {
		select {
		case <-g.done:
			return
		case <-t.Chan():
		}
		err := g.checkSessions(context.Background())
		switch {
		case err != nil:
			g.metrics.sessionChecks.WithLabelValues("failed").Inc()
			if !failing {
				g.log.Warn("cannot re-check the people behind open websockets; they stay open until a check succeeds", "err", err)
			}
			failing = true
		default:
			g.metrics.sessionChecks.WithLabelValues("ok").Inc()
			if failing {
				g.log.Info("websocket session checks work again")
			}
			failing = false
		}
	}
}

// Sign-out.
//
// POST /signout remembers the session's token as revoked until it expires: every
// request with it is refused (401, "signed out"), and every websocket opened with it is
// closed with CloseSignedOut. The replica that takes the sign-out closes its own
// sockets at once and tells the others on SignOutSubject (core NATS, so every replica
// hears it), which do the same. The list is in memory: a replica started after the
// sign-out does not know it, so a copy of the token (the cookie itself is cleared)
// works there again until it expires. A sign-out message lost while NATS is away is
// likewise unknown to the other replicas.

// SignOutSubject carries sign-outs from one gateway replica to all: the SHA-256 of the
// token, never the token, and until when it is revoked. It is outside jobs.>, which
// the nats CLI may read, and only gateways use it.
const SignOutSubject = "gstjobs.gateway.signout"

type signOutMessage struct {
	TokenSHA256 string    `json:"token_sha256"`
	Until       time.Time `json:"until"`
}

// maxRevocations bounds the revocation list's memory (about 64 bytes each). Entries
// leave when their token expires; when it is full, those expiring soonest go first.
const maxRevocations = 100_000

// revocations are the tokens signed out before they expire.
type revocations struct {
	mu    sync.Mutex
	until map[tokenHash]time.Time
}

func (r *revocations) add(h tokenHash, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.until == nil {
		r.until = map[tokenHash]time.Time{}
	}
	if _, ok := r.until[h]; !ok && len(r.until) >= maxRevocations {
		r.pruneLocked(now)
		for len(r.until) >= maxRevocations {
			var first tokenHash
			var at time.Time
			for k, u := range r.until {
				if at.IsZero() || u.Before(at) {
					first, at = k, u
				}
			}
			delete(r.until, first)
		}
	}
	if until.After(r.until[h]) {
		r.until[h] = until
	}
}

func (r *revocations) has(h tokenHash, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.until[h]
	return ok && now.Before(until)
}

func (r *revocations) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
}

func (r *revocations) pruneLocked(now time.Time) {
	for k, u := range r.until {
		if !now.Before(u) {
			delete(r.until, k)
		}
	}
}

func (r *revocations) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.until)
}

// signOut revokes a token until it expires, here and on every replica.
func (g *Gateway) signOut(raw string, expires time.Time) {
	h, until := hashToken(raw), expires.Add(clockSkew)
	g.revoke(h, until)
	data, _ := json.Marshal(signOutMessage{TokenSHA256: hex.EncodeToString(h[:]), Until: until})
	if err := g.cfg.NC.Publish(SignOutSubject, data); err != nil {
		g.log.Warn("sign-out: cannot tell the other gateway replicas; their websockets with this token stay open until it expires", "err", err)
	}
}

// revoke remembers a signed-out token and closes this replica's sockets opened with it.
func (g *Gateway) revoke(h tokenHash, until time.Time) {
	g.revoked.add(h, until, g.cfg.Clock.Now())
	g.hub.closeWhere(func(c *client) (closeReason, bool) { return signedOutSocket, c.session.token == h })
}

// hearSignOuts applies the sign-outs other replicas (and this one) publish.
func (g *Gateway) hearSignOuts() (*nats.Subscription, error) {
	return g.cfg.NC.Subscribe(SignOutSubject, func(m *nats.Msg) {
		var msg signOutMessage
		if json.Unmarshal(m.Data, &msg) != nil {
			return
		}
		b, err := hex.DecodeString(msg.TokenSHA256)
		if err != nil || len(b) != sha256.Size || !msg.Until.After(g.cfg.Clock.Now()) {
			return
		}
		g.revoke(tokenHash(b), msg.Until)
	})
}
