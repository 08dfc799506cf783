package gateway

import (
	"fmt"
	"testing"
	"time"
)

// What must hold: signed-out tokens are remembered until they expire and no longer,
// and never more than maxRevocations at once (the soonest to expire go first).
func TestRevocationsAreBounded(t *testing.T) {
	var r revocations
	t0 := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	for i := range maxRevocations + 10 {
		r.add(hashToken(fmt.Sprint("token-", i)), t0.Add(time.Hour+time.Duration(i)*time.Millisecond), t0)
	}
	if n := r.len(); n != maxRevocations {
		t.Errorf("remembered %d revocations, want at most %d", n, maxRevocations)
	}
	if r.has(hashToken("token-0"), t0) || !r.has(hashToken(fmt.Sprint("token-", maxRevocations+9)), t0) {
		t.Error("when full, the revocation expiring soonest should go first")
	}
	if r.has(hashToken(fmt.Sprint("token-", maxRevocations)), t0.Add(2*time.Hour)) {
		t.Error("a revocation outlived its token")
	}
	r.prune(t0.Add(2 * time.Hour))
	if n := r.len(); n != 0 {
		t.Errorf("after every token expired, %d revocations remain", n)
	}
}

// What must hold: a socket stays open while its person's profile exists, is in the
// same firm and has a role that may watch; otherwise the reason says what changed.
func TestAccessNow(t *testing.T) {
	s := session{userID: "p1", tenantID: "mehta"}
	for _, tc := range []struct {
		now   profileNow
		found bool
		want  string // "" stays open
	}{
		{profileNow{"mehta", RoleAdmin}, true, ""},
		{profileNow{"mehta", RolePartner}, true, ""},
		{profileNow{"mehta", RoleUser}, true, "your access changed: your role is now User"},
		{profileNow{"mehta", RoleCA}, true, "your access changed: your role is now CA"},
		{profileNow{"mehta", RoleManager}, true, "your access changed: your role is now Manager"},
		{profileNow{"mehta", RoleAdvocate}, true, "your access changed: your role is now Advocate"},
		{profileNow{"iyer", RoleAdmin}, true, "your access changed: your profile moved to another firm"},
		{profileNow{}, false, "your access changed: your profile was removed"},
	} {
		why, closes := accessNow(s, tc.now, tc.found)
		if closes != (tc.want != "") || why.text != tc.want || (closes && why.code != CloseAccessChanged) {
			t.Errorf("%+v found %v: closes %v with %d %q, want %q", tc.now, tc.found, closes, why.code, why.text, tc.want)
		}
		if len(why.text) > 123 {
			t.Errorf("close reason %q is longer than a close frame holds (123 bytes)", why.text)
		}
	}
	if len(tooManySockets.text) > 123 || len(sessionExpired.text) > 123 {
		t.Error("a close reason is longer than a close frame holds (123 bytes)")
	}
}
