package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/pgtest"
	"github.com/lexhq/gstjobs/services/gateway"
)

// dialWS opens the websocket with the given headers and returns the HTTP status of
// the handshake (101 when it was accepted).
func (s *system) dialWS(t *testing.T, header http.Header) (int, *websocket.Conn) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(strings.TrimSuffix(s.URL, "/"), "http") + "/ws"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, res, err := d.Dial(u, header)
	if err != nil {
		if res == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		return res.StatusCode, nil
	}
	t.Cleanup(func() { _ = conn.Close() })
	return res.StatusCode, conn
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestRoleMatrix tries every route as a user of each of the six roles and as the
// platform operator. What must hold: admins may do everything for their firm; partners
// everything but pause and resume; managers, CAs, advocates and users nothing (403,
// with a message that names the firm's admin); changing the schedule, which holds for
// every firm, is the operator's alone (403 for every firm role, saying so); the
// operator may do everything; /api/health and /metrics are open to all.
func TestRoleMatrix(t *testing.T) {
	s := startSystem(t, systemOptions{})
	const sla = "/api/jobs/" + catalog.CheckSLAAndOverdue
	routes := []struct {
		method, path, body string
		ok                 int
		adminOnly          bool
		operatorOnly       bool
	}{
		{"GET", "/", "", 200, false, false},
		{"GET", "/api/me", "", 200, false, false},
		{"GET", "/api/jobs", "", 200, false, false},
		{"GET", sla, "", 200, false, false},
		{"GET", sla + "/runs?limit=10", "", 200, false, false},
		{"POST", sla + "/run", `{"reason":"role matrix"}`, 202, false, false},
		{"POST", sla + "/pause", `{"reason":"role matrix"}`, 200, true, false},
		{"POST", sla + "/resume", `{"reason":"role matrix"}`, 200, true, false},
		{"PUT", sla + "/schedule", `{"schedule":"*/20 * * * *","reason":"role matrix"}`, 200, true, true},
		{"GET", "/ws", "", 101, false, false},
	}
	for _, role := range []string{"admin", "partner", "manager", "ca", "advocate", "user", "operator"} {
		tok := token(t, demo.UsersByRole[role])
		if role == "operator" {
			tok = operatorToken(t)
		}
		for _, rt := range routes {
			want := rt.ok
			switch {
			case role == "operator":
			case role != "admin" && role != "partner":
				want = http.StatusForbidden
			case rt.operatorOnly:
				want = http.StatusForbidden
			case rt.adminOnly && role != "admin":
				want = http.StatusForbidden
			}
			t.Run(role+" "+rt.method+" "+rt.path, func(t *testing.T) {
				if rt.path == "/ws" {
					if got, _ := s.dialWS(t, bearer(tok)); got != want {
						t.Fatalf("websocket handshake as %s: got %d, want %d", role, got, want)
					}
					return
				}
				res := s.do(t, request{method: rt.method, path: rt.path, body: rt.body, bearer: tok})
				if res.code != want {
					t.Fatalf("%s %s as %s: got %d, want %d: %s", rt.method, rt.path, role, res.code, want, res.body)
				}
				if want != http.StatusForbidden {
					return
				}
				text := string(res.body)
				if rt.path != "/" {
					text = res.errorText(t)
				}
				switch {
				case rt.operatorOnly && (role == "admin" || role == "partner"):
					if !strings.Contains(text, "platform operator") {
						t.Errorf("a firm's %s refused a schedule change should be told it is the platform operator's: %s", role, text)
					}
				case !strings.Contains(text, "Anjali Mehta"):
					t.Errorf("the refusal should name the firm's admin, Anjali Mehta: %s", text)
				case role == "partner" && !strings.Contains(text, "Only admins"):
					t.Errorf("a partner refused a pause should be told only admins may: %s", text)
				}
			})
		}
		t.Run(role+" open routes", func(t *testing.T) {
			for _, path := range []string{"/api/health", "/metrics"} {
				for _, tok := range []string{tok, ""} {
					if res := s.do(t, request{method: "GET", path: path, bearer: tok}); res.code != 200 && res.code != 503 {
						t.Errorf("GET %s (token: %v) = %d, want it open (200 or 503): %s", path, tok != "", res.code, res.body)
					}
				}
			}
		})
	}
}

// TestRefusalPage checks what a refused user reads: why (their role), and whom to ask
// (the firm's admins by name and e-mail, not another firm's).
func TestRefusalPage(t *testing.T) {
	s := startSystem(t, systemOptions{})
	res := s.do(t, request{method: "GET", path: "/", bearer: token(t, demo.UserAdvocate)})
	if res.code != http.StatusForbidden || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / as an advocate = %d %s, want a 403 page", res.code, res.header.Get("Content-Type"))
	}
	page := string(res.body)
	for _, want := range []string{"You don&#39;t have access to Background Jobs", "Admin and Partner roles only", "Priya Nair (Advocate) at Mehta &amp; Associates", "Anjali Mehta", "mailto:anjali@mehta.example"} {
		if !strings.Contains(page, want) {
			t.Errorf("the refusal page should say %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Lakshmi Iyer") {
		t.Error("the refusal page names another firm's admin")
	}
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("the page has no restrictive CSP: %q", csp)
	}
}

// TestTokenFailures sends tokens that must not let anyone in. What must hold: each
// gets 401 with a JSON error on the API and the websocket, and the sign-in page on /;
// a bad session cookie is also cleared.
func TestTokenFailures(t *testing.T) {
	s := startSystem(t, systemOptions{})
	now := time.Now()
	claims := func(sub string, exp time.Time) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp)}
	}
	sign := func(m jwt.SigningMethod, c jwt.Claims, key any) string {
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(jwt.SigningMethodHS256, claims(mehtaAdmin, now.Add(time.Hour)), testSecret)
	parts := strings.Split(valid, ".")
	other := sign(jwt.SigningMethodHS256, claims(demo.UserAdvocate, now.Add(time.Hour)), testSecret)
	tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]

	cases := []struct {
		name, header, wantWord string
	}{
		{"missing", "", "sign-in required"},
		{"not a JWT", "Bearer not-a-jwt", "invalid token"},
		{"other scheme", "Basic " + valid, "sign-in required"},
		{"forged signature", "Bearer " + sign(jwt.SigningMethodHS256, claims(mehtaAdmin, now.Add(time.Hour)), []byte("another-secret-another-secret-123456")), "invalid token"},
		{"payload swapped under a valid signature", "Bearer " + tampered, "invalid token"},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, claims(mehtaAdmin, now.Add(-time.Hour)), testSecret), "expired"},
		{"not valid yet", "Bearer " + sign(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: mehtaAdmin, NotBefore: jwt.NewNumericDate(now.Add(time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Hour))}, testSecret), "invalid token"},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, claims(mehtaAdmin, now.Add(time.Hour)), jwt.UnsafeAllowNoneSignatureType), "invalid token"},
		{"wrong alg HS512", "Bearer " + sign(jwt.SigningMethodHS512, claims(mehtaAdmin, now.Add(time.Hour)), testSecret), "invalid token"},
		{"wrong alg RS256", "Bearer " + sign(jwt.SigningMethodRS256, claims(mehtaAdmin, now.Add(time.Hour)), rsaKey), "invalid token"},
		{"no expiry", "Bearer " + sign(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: mehtaAdmin}, testSecret), "invalid token"},
		{"no subject", "Bearer " + sign(jwt.SigningMethodHS256, claims("", now.Add(time.Hour)), testSecret), "invalid token"},
		{"unknown subject", "Bearer " + sign(jwt.SigningMethodHS256, claims(uuid.NewString(), now.Add(time.Hour)), testSecret), "unknown user"},
		{"subject not a profile id", "Bearer " + sign(jwt.SigningMethodHS256, claims("admin", now.Add(time.Hour)), testSecret), "unknown user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.header != "" {
				h["Authorization"] = tc.header
			}
			res := s.do(t, request{method: "GET", path: "/api/jobs", header: h})
			if res.code != http.StatusUnauthorized {
				t.Fatalf("GET /api/jobs = %d, want 401: %s", res.code, res.body)
			}
			if msg := res.errorText(t); !strings.Contains(msg, tc.wantWord) {
				t.Errorf("error %q should say %q", msg, tc.wantWord)
			}
			if res.header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 should carry WWW-Authenticate")
			}
			if res := s.do(t, request{method: "POST", path: "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run", body: `{}`, header: h}); res.code != http.StatusUnauthorized {
				t.Errorf("POST run = %d, want 401", res.code)
			}
			page := s.do(t, request{method: "GET", path: "/", header: h})
			if page.code != http.StatusUnauthorized || !strings.Contains(string(page.body), "Sign in to Background Jobs") {
				t.Errorf("GET / = %d, want 401 with the sign-in page: %s", page.code, page.body)
			}
			ws := http.Header{}
			if tc.header != "" {
				ws.Set("Authorization", tc.header)
			}
			if code, _ := s.dialWS(t, ws); code != http.StatusUnauthorized {
				t.Errorf("websocket handshake = %d, want 401", code)
			}
		})
	}

	t.Run("forged session cookie is refused and cleared", func(t *testing.T) {
		forged := sign(jwt.SigningMethodHS256, claims(mehtaAdmin, now.Add(time.Hour)), []byte("another-secret-another-secret-123456"))
		res := s.do(t, request{method: "GET", path: "/api/jobs", header: map[string]string{"Cookie": gateway.SessionCookie + "=" + forged}})
		if res.code != http.StatusUnauthorized {
			t.Fatalf("GET /api/jobs with a forged cookie = %d, want 401", res.code)
		}
		if sc := res.header.Get("Set-Cookie"); !strings.Contains(sc, gateway.SessionCookie+"=;") || !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("the bad cookie should be cleared, got Set-Cookie %q", sc)
		}
	})
}

// TestSignIn follows a development sign-in link. What must hold: the link sets an
// HttpOnly, SameSite=Strict session cookie that lives no longer than the token, and
// the page moves on to the dashboard; the cookie then works for the API; a bad link
// sets nothing; sign-out clears the cookie.
func TestSignIn(t *testing.T) {
	s := startSystem(t, systemOptions{devMode: true})
	links, err := s.GW.SignInLinks(demo.UsersByRole, 10*time.Minute)
	if err != nil {
		t.Fatalf("SignInLinks in development mode: %v", err)
	}
	if len(links) != 6 {
		t.Fatalf("want a link per role (6), got %d", len(links))
	}
	link, err := url.Parse(links["admin"])
	if err != nil || !strings.HasPrefix(links["admin"], s.URL+"signin?token=") {
		t.Fatalf("admin link %q should be %ssignin?token=…", links["admin"], s.URL)
	}

	res := s.do(t, request{method: "GET", path: link.RequestURI()})
	if res.code != http.StatusOK || !strings.Contains(string(res.body), `http-equiv="refresh" content="0; url=/"`) {
		t.Fatalf("GET %s = %d, want 200 with a page that opens /: %s", link.Path, res.code, res.body)
	}
	cookie := (&http.Response{Header: res.header}).Cookies()
	if len(cookie) != 1 || cookie[0].Name != gateway.SessionCookie {
		t.Fatalf("want one %s cookie, got %v", gateway.SessionCookie, cookie)
	}
	c := cookie[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie must be HttpOnly, SameSite=Strict, Path=/: %+v", c)
	}
	if c.MaxAge <= 0 || c.MaxAge > int((10*time.Minute).Seconds()) {
		t.Errorf("cookie Max-Age %d should not outlive the 10-minute token", c.MaxAge)
	}
	me := s.do(t, request{method: "GET", path: "/api/me", header: map[string]string{"Cookie": c.Name + "=" + c.Value}})
	if me.code != http.StatusOK || !strings.Contains(string(me.body), `"name":"Anjali Mehta"`) {
		t.Fatalf("GET /api/me with the cookie = %d: %s", me.code, me.body)
	}

	bad := s.do(t, request{method: "GET", path: "/signin?token=forged.token.here"})
	if bad.code != http.StatusUnauthorized || bad.header.Get("Set-Cookie") != "" {
		t.Errorf("a bad link = %d with Set-Cookie %q, want 401 and no cookie", bad.code, bad.header.Get("Set-Cookie"))
	}
	if !strings.Contains(string(bad.body), "sign-in links that the launcher") {
		t.Errorf("in development the sign-in page should point at the launcher's links: %s", bad.body)
	}

	out := s.do(t, request{method: "POST", path: "/signout", header: map[string]string{"Cookie": c.Name + "=" + c.Value}})
	if sc := out.header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("sign-out should clear the cookie, got Set-Cookie %q", sc)
	}
}

// TestSignInLinksOnlyInDevelopment: outside development mode the gateway mints no
// links, so a launcher has nothing to print.
func TestSignInLinksOnlyInDevelopment(t *testing.T) {
	s := startSystem(t, systemOptions{})
	if _, err := s.GW.SignInLinks(demo.UsersByRole, time.Minute); !errors.Is(err, gateway.ErrNotDevMode) {
		t.Fatalf("SignInLinks outside development = %v, want ErrNotDevMode", err)
	}
	if _, err := gateway.SignInLinks(testSecret, "not a url", demo.UsersByRole, time.Minute); err == nil {
		t.Error("SignInLinks should reject a base URL that is not http(s)")
	}
}

// TestConfigRequiresSecret: outside development AUTH_JWT_SECRET is required and must
// be long enough; ALLOWED_ORIGINS entries must be origins. Each error names the setting.
func TestConfigRequiresSecret(t *testing.T) {
	ns := natstest.Start(t)
	pool, _ := pgtest.NewPool(t)
	base := func() gateway.Config { return gateway.Config{Pool: pool, NC: ns.NC, JS: ns.JS} }
	cases := []struct {
		name    string
		edit    func(*gateway.Config)
		wantErr string
	}{
		{"production without a secret", func(*gateway.Config) {}, "AUTH_JWT_SECRET is required"},
		{"production with a short secret", func(c *gateway.Config) { c.JWTSecret = []byte("short") }, "AUTH_JWT_SECRET is 5 bytes"},
		{"bad allowed origin", func(c *gateway.Config) {
			c.JWTSecret = testSecret
			c.AllowedOrigins = []string{"jobs.example.com/path"}
		}, "ALLOWED_ORIGINS"},
		{"production with the secret", func(c *gateway.Config) {
			c.JWTSecret = testSecret
			c.AllowedOrigins = []string{"https://jobs.example.com"}
		}, ""},
		{"development without a secret", func(c *gateway.Config) { c.DevMode = true }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			_, err := gateway.New(cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New = %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
}

// TestOriginChecks: the websocket accepts only the gateway's own pages (and
// ALLOWED_ORIGINS); a change sent with the session cookie from another site's page is
// refused even though the cookie is valid.
func TestOriginChecks(t *testing.T) {
	s := startSystem(t, systemOptions{allowedOrigins: []string{"https://jobs.mehta.example"}})
	self := strings.TrimSuffix(s.URL, "/")
	tok := token(t, mehtaAdmin)
	cookie := gateway.SessionCookie + "=" + tok
	for _, tc := range []struct {
		origin string
		want   int
	}{{self, 101}, {"https://jobs.mehta.example", 101}, {"https://evil.example", 403}, {"", 101}} {
		h := http.Header{"Cookie": {cookie}}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if got, _ := s.dialWS(t, h); got != tc.want {
			t.Errorf("websocket from origin %q = %d, want %d", tc.origin, got, tc.want)
		}
	}
	run := "/api/jobs/" + catalog.CheckSLAAndOverdue + "/run"
	if res := s.do(t, request{method: "POST", path: run, body: `{}`, header: map[string]string{"Cookie": cookie, "Origin": "https://evil.example"}}); res.code != http.StatusForbidden {
		t.Errorf("Run Now with the cookie from another site = %d, want 403: %s", res.code, res.body)
	}
	if res := s.do(t, request{method: "POST", path: run, body: `{}`, header: map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site"}}); res.code != http.StatusForbidden {
		t.Errorf("Run Now with the cookie, cross-site and no Origin = %d, want 403", res.code)
	}
	if res := s.do(t, request{method: "POST", path: run, body: `{}`, header: map[string]string{"Cookie": cookie, "Origin": self}}); res.code != http.StatusAccepted {
		t.Errorf("Run Now with the cookie from the dashboard = %d, want 202: %s", res.code, res.body)
	}
}

// TestAuditRecordsWhoAndWhy: manual triggers, pauses and resumes are written to
// audit_log with the user's id, firm, e-mail and reason; a schedule change, the
// operator's, with the operator's name and no firm.
func TestAuditRecordsWhoAndWhy(t *testing.T) {
	s := startSystem(t, systemOptions{})
	tok := token(t, mehtaAdmin)
	job := "/api/jobs/" + catalog.CheckSLAAndOverdue
	for _, q := range []request{
		{method: "POST", path: job + "/run", body: `{"reason":"before client meeting"}`},
		{method: "POST", path: job + "/pause", body: `{"reason":"maintenance window"}`},
		{method: "POST", path: job + "/resume", body: `{"reason":"maintenance over"}`},
		{method: "PUT", path: job + "/schedule", body: `{"schedule":"*/30 * * * *","reason":"quieter nights"}`, bearer: operatorToken(t)},
	} {
		if q.bearer == "" {
			q.bearer = tok
		}
		if res := s.do(t, q); res.code >= 300 {
			t.Fatalf("%s %s = %d: %s", q.method, q.path, res.code, res.body)
		}
	}
	rows, err := s.Pool.Query(context.Background(), `
SELECT action_type, coalesce(user_id::text, ''), coalesce(tenant_id::text, ''), details->>'requested_by', details->>'reason'
FROM audit_log WHERE action_type <> 'background_job_execution' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][4]string{}
	for rows.Next() {
		var action, user, tenant, by, reason string
		if err := rows.Scan(&action, &user, &tenant, &by, &reason); err != nil {
			t.Fatal(err)
		}
		got[action] = [4]string{user, tenant, by, reason}
	}
	for action, reason := range map[string]string{
		"background_job_trigger":          "before client meeting",
		"background_job_paused":           "maintenance window",
		"background_job_resumed":          "maintenance over",
		"background_job_schedule_changed": "quieter nights",
	} {
		want := [4]string{mehtaAdmin, demo.TenantMehta, "anjali@mehta.example", reason}
		if action == "background_job_schedule_changed" {
			want = [4]string{"", "", "oncall@platform.example", reason}
		}
		if got[action] != want {
			t.Errorf("%s row = %v, want user, firm, e-mail and reason %v", action, got[action], want)
		}
	}
}

// What is tried: two hundred requests at once, of thirty people of two firms (the
// demo's admins and partners, and people added for the test), with a profile that
// does not exist among them.
// What must hold: though the look-ups of requests that arrive together share queries,
// each request is answered as its own person: their id, firm and role; the missing
// profile is refused 401.
func TestPeopleAskingTogetherAreEachThemselves(t *testing.T) {
	s := startSystem(t, systemOptions{})
	type person struct{ id, tenant, role string }
	people := []person{
		{mehtaAdmin, demo.TenantMehta, gateway.RoleAdmin},
		{demo.UserPartner, demo.TenantMehta, gateway.RolePartner},
		{iyerAdmin, demo.TenantIyer, gateway.RoleAdmin},
	}
	for i := range 27 {
		id, tenant := uuid.NewString(), demo.TenantIyer
		if i%2 == 0 {
			tenant = demo.TenantMehta
		}
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO profiles (id, tenant_id, full_name, email, role) VALUES ($1, $2, $3, $4, 'partner')`,
			id, tenant, fmt.Sprint("Partner ", i), fmt.Sprintf("p%d@firm.example", i)); err != nil {
			t.Fatal(err)
		}
		people = append(people, person{id, tenant, gateway.RolePartner})
	}
	missing := token(t, uuid.NewString())
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if i%50 == 49 {
				if res := s.do(t, request{method: "GET", path: "/api/me", bearer: missing}); res.code != http.StatusUnauthorized {
					t.Errorf("a profile that does not exist: %d, want 401", res.code)
				}
				return
			}
			p := people[i%len(people)]
			res := s.do(t, request{method: "GET", path: "/api/me", bearer: token(t, p.id)})
			var me gateway.Me
			if res.code != http.StatusOK || json.Unmarshal(res.body, &me) != nil {
				t.Errorf("GET /api/me as %s = %d: %s", p.id, res.code, res.body)
				return
			}
			if me.User.UserID != p.id || me.User.TenantID != p.tenant || me.User.Role != p.role {
				t.Errorf("asked as %+v, answered as %+v", p, me.User)
			}
		})
	}
	wg.Wait()
}
