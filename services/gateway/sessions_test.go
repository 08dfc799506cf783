package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// addPerson adds a profile with the role to the firm and returns its id.
func (s *system) addPerson(t *testing.T, tenantID, role string) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, $3, $4, $5)`,
		id, tenantID, "Test "+role+" "+id[:8], id[:8]+"@test.example", role); err != nil {
		t.Fatal(err)
	}
	return id
}

// closedWith reads until the server closes the socket, and returns its close frame.
func (c *wsClient) closedWith(what string) *websocket.CloseError {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("want the server to close the websocket (%s), got %v", what, err)
		}
		return ce
	}
}

// alive proves each socket still gets live frames: it publishes a heartbeat of a run
// for every firm, which every viewer sees and nothing stores, and reads each socket up
// to it.
func (s *system) alive(t *testing.T, what string, sockets ...*wsClient) {
	t.Helper()
	probe := "probe-" + uuid.NewString()
	data, _ := json.Marshal(events.Status{RunID: probe, JobName: catalog.CheckSLAAndOverdue, State: events.StateHeartbeat,
		Scope: &events.Scope{All: true}, At: time.Now()})
	if err := s.NATS.NC.Publish(events.StatusSubject(catalog.CheckSLAAndOverdue), data); err != nil {
		t.Fatal(err)
	}
	for i, ws := range sockets {
		ws.next(fmt.Sprintf("%s (socket %d) to get a live frame", what, i+1), func(f gateway.Frame, _ string) bool {
			return f.Type == "status" && f.Status != nil && f.Status.RunID == probe
		})
	}
}

// sessionCheck moves the fake clock on by one session interval and waits until the
// check it starts has finished; it says whether it could read the database.
func (s *system) sessionCheck(t *testing.T, clock *clockwork.FakeClock) (ok bool) {
	t.Helper()
	const okSample, failedSample = `gstjobs_gateway_session_checks_total{result="ok"}`, `gstjobs_gateway_session_checks_total{result="failed"}`
	okBefore, failedBefore := s.metric(t, okSample), s.metric(t, failedSample)
	clock.Advance(gateway.DefaultSessionCheckEvery)
	waitFor(t, "the session check to finish", 20*time.Second, func() bool {
		ok = s.metric(t, okSample) > okBefore
		return ok || s.metric(t, failedSample) > failedBefore
	})
	return ok
}

// What is tried: with dashboards open, one partner is demoted to user (with two
// sockets), one to manager, one profile is removed, and one moves to another firm;
// then the session clock ticks once (15 s, the default interval).
// What must hold: each of those sockets is closed at that one tick, with 4003 and a
// reason that says what changed; Mehta's admin, an admin demoted to partner (who may
// still watch) and the platform operator (who has no profile) keep getting live
// frames. The bound: a change is seen within one interval plus the query's timeout,
// 25 s, under the 30 s promised.
func TestAccessChangeClosesWebsocket(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now())
	s := startSystem(t, systemOptions{clock: clock})
	cases := []struct {
		name, role, change, want string
		sockets                  int
	}{
		{"a partner demoted to user", gateway.RolePartner, `UPDATE profiles SET role = 'user' WHERE id = $1`, "your access changed: your role is now User", 2},
		{"a partner demoted to manager", gateway.RolePartner, `UPDATE profiles SET role = 'manager' WHERE id = $1`, "your access changed: your role is now Manager", 1},
		{"a removed admin", gateway.RoleAdmin, `DELETE FROM profiles WHERE id = $1`, "your access changed: your profile was removed", 1},
		{"an admin moved to another firm", gateway.RoleAdmin, `UPDATE profiles SET tenant_id = '` + demo.TenantIyer + `' WHERE id = $1`, "your access changed: your profile moved to another firm", 1},
	}
	type opened struct {
		id      string
		sockets []*wsClient
	}
	people := make([]opened, len(cases))
	for i, tc := range cases {
		people[i].id = s.addPerson(t, demo.TenantMehta, tc.role)
		for range tc.sockets {
			ws := s.connectWS(t, token(t, people[i].id))
			ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
			people[i].sockets = append(people[i].sockets, ws)
		}
	}
	stays := map[string]*wsClient{}
	demotedToPartner := s.addPerson(t, demo.TenantMehta, gateway.RoleAdmin)
	for name, tok := range map[string]string{"Mehta's admin": token(t, mehtaAdmin), "an admin demoted to partner": token(t, demotedToPartner), "the operator": operatorToken(t)} {
		ws := s.connectWS(t, tok)
		ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
		stays[name] = ws
	}
	ctx := context.Background()
	for i, tc := range cases {
		if _, err := s.Pool.Exec(ctx, tc.change, people[i].id); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	if _, err := s.Pool.Exec(ctx, `UPDATE profiles SET role = 'partner' WHERE id = $1`, demotedToPartner); err != nil {
		t.Fatal(err)
	}

	if !s.sessionCheck(t, clock) {
		t.Fatal("the session check could not read the database")
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for j, ws := range people[i].sockets {
				ce := ws.closedWith(tc.name)
				if ce.Code != gateway.CloseAccessChanged || ce.Text != tc.want {
					t.Errorf("socket %d: closed with %d %q, want %d %q", j+1, ce.Code, ce.Text, gateway.CloseAccessChanged, tc.want)
				}
			}
		})
	}
	for name, ws := range stays {
		s.alive(t, name, ws)
	}
	if got := s.metric(t, `gstjobs_gateway_websockets_closed_total{reason="access_changed"}`); got != 5 {
		t.Errorf("websockets closed for a change of access = %v, want 5", got)
	}
}

// What is tried: a partner is demoted while the database is away, and the session
// clock ticks; then the database comes back and the clock ticks again.
// What must hold: while the profiles cannot be read the partner's socket stays open
// and keeps getting live frames (an outage says nothing about anyone's access, and the
// live path needs no database); the first check that can read them closes it with 4003.
func TestSessionCheckWaitsForTheDatabase(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now())
	s := startSystem(t, systemOptions{clock: clock})
	partner := s.addPerson(t, demo.TenantMehta, gateway.RolePartner)
	ws := s.connectWS(t, token(t, partner))
	ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	if _, err := s.Pool.Exec(context.Background(), `UPDATE profiles SET role = 'user' WHERE id = $1`, partner); err != nil {
		t.Fatal(err)
	}
	bringBack := s.takeDatabaseAway(t)
	if s.sessionCheck(t, clock) {
		t.Fatal("the session check read the profiles with the database away")
	}
	s.alive(t, "the partner's dashboard during the outage", ws)

	bringBack()
	// The pool's connections were ended with the database: the first check after may
	// still fail on one, so tick until one reads the profiles.
	for i := 0; !s.sessionCheck(t, clock); i++ {
		if i == 5 {
			t.Fatal("5 session checks after the database came back, none could read it")
		}
	}
	if ce := ws.closedWith("the demoted partner's"); ce.Code != gateway.CloseAccessChanged || !strings.Contains(ce.Text, "User") {
		t.Errorf("closed with %d %q, want %d saying the role is now User", ce.Code, ce.Text, gateway.CloseAccessChanged)
	}
}

// dialAt opens a websocket to the gateway at base (an http:// address).
func dialAt(t *testing.T, base string, header http.Header) (int, *wsClient) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(strings.TrimSuffix(base, "/"), "http") + "/ws"
	conn, res, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(u, header)
	if err != nil {
		if res == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		return res.StatusCode, nil
	}
	t.Cleanup(func() { _ = conn.Close() })
	ws := &wsClient{t: t, conn: conn}
	ws.next("the snapshot", func(f gateway.Frame, _ string) bool { return f.Type == "snapshot" })
	return res.StatusCode, ws
}

// What is tried: Mehta's admin has the dashboard open with the session cookie, and a
// script of theirs a socket with another token. Another site's page posts /signout
// (with an Origin, with none but Sec-Fetch-Site cross-site, with Origin null); then
// the dashboard's own Sign out posts it as Chromium does (Origin null under our
// no-referrer policy, Sec-Fetch-Site same-origin).
// What must hold: the cross-site posts are refused 403 and change nothing; the real
// sign-out clears the cookie, closes the browser's socket at once with 4002, and the
// token is refused afterwards (401 "signed out", and no new socket); the script's
// other token is not touched.
func TestSignOutClosesTheBrowsersSockets(t *testing.T) {
	s := startSystem(t, systemOptions{})
	self := strings.TrimSuffix(s.URL, "/")
	browserToken := token(t, mehtaAdmin)
	scriptToken, err := gateway.IssueToken(testSecret, mehtaAdmin, time.Now(), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cookie := gateway.SessionCookie + "=" + browserToken
	_, browser := dialAt(t, s.URL, http.Header{"Cookie": {cookie}, "Origin": {self}})
	_, script := dialAt(t, s.URL, bearer(scriptToken))

	for _, h := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "null", "Sec-Fetch-Site": "cross-site"},
		{"Origin": "null"},
	} {
		h["Cookie"] = cookie
		res := s.do(t, request{method: "POST", path: "/signout", header: h})
		if res.code != http.StatusForbidden || !strings.Contains(string(res.body), "another site") || res.header.Get("Set-Cookie") != "" {
			t.Errorf("POST /signout with %v = %d (Set-Cookie %q), want 403 saying it came from another site, cookie kept: %s", h, res.code, res.header.Get("Set-Cookie"), res.body)
		}
	}
	if me := s.do(t, request{method: "GET", path: "/api/me", header: map[string]string{"Cookie": cookie}}); me.code != http.StatusOK {
		t.Fatalf("after refused sign-outs the session should still work: /api/me = %d %s", me.code, me.body)
	}
	s.alive(t, "the browser's dashboard after refused sign-outs", browser)

	out := s.do(t, request{method: "POST", path: "/signout", header: map[string]string{"Cookie": cookie, "Origin": "null", "Sec-Fetch-Site": "same-origin"}})
	if out.code != http.StatusOK || !strings.Contains(out.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("the dashboard's sign-out = %d, Set-Cookie %q; want 200 clearing the cookie", out.code, out.header.Get("Set-Cookie"))
	}
	if ce := browser.closedWith("the signed-out browser's"); ce.Code != gateway.CloseSignedOut {
		t.Errorf("the browser's socket closed with %d %q, want %d (signed out)", ce.Code, ce.Text, gateway.CloseSignedOut)
	}
	me := s.do(t, request{method: "GET", path: "/api/me", header: map[string]string{"Cookie": cookie}})
	if me.code != http.StatusUnauthorized || !strings.Contains(me.errorText(t), "signed out") {
		t.Errorf("the signed-out token on /api/me = %d %s, want 401 saying it was signed out", me.code, me.body)
	}
	if code, _ := s.dialWS(t, http.Header{"Cookie": {cookie}, "Origin": {self}}); code != http.StatusUnauthorized {
		t.Errorf("a new websocket with the signed-out token = %d, want 401", code)
	}
	s.alive(t, "the script's socket, with another token", script)
	if me := s.do(t, request{method: "GET", path: "/api/me", bearer: scriptToken}); me.code != http.StatusOK {
		t.Errorf("the other token after the sign-out = %d, want 200", me.code)
	}
}

// What is tried: in development, an admin follows the launcher's sign-in link, signs
// out, and follows the same link again; outside development, a product token that was
// signed out is brought to /signin again.
// What must hold: in development the link signs in again with a new session token
// (the launcher's links last 12 hours, and signing out must not kill them), while the
// signed-out token stays refused; outside development the signed-out token is refused
// at /signin too (the product gives a new one).
func TestSignInAgainAfterSignOut(t *testing.T) {
	signIn := func(s *system, link string) response {
		t.Helper()
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		return s.do(t, request{method: "GET", path: u.RequestURI()})
	}
	dev := startSystem(t, systemOptions{devMode: true})
	links, err := dev.GW.SignInLinks(map[string]string{"admin": mehtaAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first := sessionCookie(t, signIn(dev, links["admin"]))
	if res := dev.do(t, request{method: "POST", path: "/signout", header: map[string]string{"Cookie": gateway.SessionCookie + "=" + first}}); res.code != http.StatusOK {
		t.Fatalf("sign-out = %d %s", res.code, res.body)
	}
	again := signIn(dev, links["admin"])
	second := sessionCookie(t, again)
	if again.code != http.StatusOK || second == first {
		t.Fatalf("following the link again = %d, new token %v; want 200 and a new session", again.code, second != first)
	}
	if res := dev.do(t, request{method: "GET", path: "/api/me", bearer: second}); res.code != http.StatusOK {
		t.Errorf("the new session = %d on /api/me, want 200", res.code)
	}
	if res := dev.do(t, request{method: "GET", path: "/api/me", bearer: first}); res.code != http.StatusUnauthorized {
		t.Errorf("the signed-out token = %d on /api/me, want 401", res.code)
	}

	prod := startSystem(t, systemOptions{})
	tok := token(t, mehtaAdmin)
	if res := prod.do(t, request{method: "POST", path: "/signout", bearer: tok}); res.code != http.StatusOK {
		t.Fatalf("sign-out = %d %s", res.code, res.body)
	}
	res := prod.do(t, request{method: "GET", path: "/signin?token=" + tok})
	if res.code != http.StatusUnauthorized || res.header.Get("Set-Cookie") != "" || !strings.Contains(string(res.body), "signed out") {
		t.Errorf("a signed-out product token at /signin = %d (Set-Cookie %q), want 401 saying it was signed out", res.code, res.header.Get("Set-Cookie"))
	}
}

// sessionCookie is the session cookie an answer sets.
func sessionCookie(t *testing.T, res response) string {
	t.Helper()
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == gateway.SessionCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie set (%d): %s", gateway.SessionCookie, res.code, res.body)
	return ""
}

// What is tried: two gateway replicas on the same NATS and PostgreSQL; the dashboard's
// socket is on the second, and the sign-out reaches the first.
// What must hold: the first tells the second (core NATS), which closes the socket with
// 4002 and refuses the token from then on.
func TestSignOutReachesEveryReplica(t *testing.T) {
	s := startSystem(t, systemOptions{})
	cfg := s.cfg
	cfg.Addr = "127.0.0.1:0"
	second, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Stop)
	tok := token(t, mehtaAdmin)
	_, ws := dialAt(t, second.URL(), bearer(tok))
	if res := s.do(t, request{method: "POST", path: "/signout", bearer: tok}); res.code != http.StatusOK {
		t.Fatalf("sign-out on the first replica = %d %s", res.code, res.body)
	}
	if ce := ws.closedWith("the socket on the second replica"); ce.Code != gateway.CloseSignedOut {
		t.Errorf("the second replica closed the socket with %d %q, want %d", ce.Code, ce.Text, gateway.CloseSignedOut)
	}
	req, _ := http.NewRequest("GET", second.URL()+"api/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the second replica answers the signed-out token %d, want 401", res.StatusCode)
	}
}

// What is tried: Mehta's admin opens 9 dashboards at once; Iyer's admin has one.
// What must hold: the 9th opens and the oldest is closed with 4008 and words that say
// why; the other 8 and Iyer's keep getting live frames; the closure is counted.
func TestWebsocketsPerPersonAreBounded(t *testing.T) {
	s := startSystem(t, systemOptions{})
	tok := token(t, mehtaAdmin)
	var sockets []*wsClient
	for range gateway.MaxSocketsPerUser {
		_, ws := dialAt(t, s.URL, bearer(tok))
		sockets = append(sockets, ws)
	}
	_, iyer := dialAt(t, s.URL, bearer(token(t, iyerAdmin)))
	_, ninth := dialAt(t, s.URL, bearer(tok))
	ce := sockets[0].closedWith("the oldest of 9")
	if ce.Code != gateway.CloseTooManySockets || !strings.Contains(ce.Text, "more than 8 dashboards") {
		t.Errorf("the oldest closed with %d %q, want %d saying more than 8 dashboards are open", ce.Code, ce.Text, gateway.CloseTooManySockets)
	}
	s.alive(t, "the newest 8 and Iyer's", append(sockets[1:], ninth, iyer)...)
	if got := s.metric(t, `gstjobs_gateway_websockets_closed_total{reason="too_many_per_user"}`); got != 1 {
		t.Errorf("closures counted = %v, want 1", got)
	}
}
