package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Who may do what. The dashboard, its API and the websocket are for admins and
// partners; pausing, resuming and rescheduling are for admins.
const (
	RoleAdmin    = "admin"
	RolePartner  = "partner"
	RoleManager  = "manager"
	RoleCA       = "ca"
	RoleAdvocate = "advocate"
	RoleUser     = "user"
)

// RoleOperator is the platform operator's: the people who run the deployment. It is
// not one of the six firm roles and no profile has it; it comes only from a token
// signed with the operator secret (OPERATOR_JWT_SECRET) for OperatorAudience.
const RoleOperator = "platform_operator"

// OperatorAudience is the `aud` of an operator token.
const OperatorAudience = "gstjobs-operator"

var roleNames = map[string]string{
	RoleAdmin: "Admin", RolePartner: "Partner", RoleManager: "Manager",
	RoleCA: "CA", RoleAdvocate: "Advocate", RoleUser: "User", RoleOperator: "Platform operator",
}

// SessionCookie holds the signed-in user's token for the browser, which cannot put a
// header on a WebSocket. It is HttpOnly and SameSite=Strict; the websocket and every
// change also check the Origin.
const SessionCookie = "gstjobs_session"

// MinSecretLen is the shortest AUTH_JWT_SECRET accepted outside development: an HS256
// key shorter than the hash is easier to guess than the signature is to forge.
const MinSecretLen = 32

// clockSkew is how far the gateway's clock may disagree with the issuer's.
const clockSkew = 30 * time.Second

// Errors of authentication, matched with errors.Is; each answers 401.
var (
	ErrNoToken      = errors.New("sign-in required")
	ErrInvalidToken = errors.New("invalid token")
	ErrExpiredToken = errors.New("session expired")
	ErrUnknownUser  = errors.New("unknown user")
	ErrSignedOut    = errors.New("signed out")
	// ErrNotDevMode answers Gateway.SignInLinks outside development.
	ErrNotDevMode = errors.New("gateway: sign-in links exist only in development mode (GATEWAY_DEV_MODE=true)")
)

// Principal is the user behind a request: the token's subject, as profiles knows them,
// or the platform operator, who has no profile and no firm.
type Principal struct {
	UserID     string    `json:"user_id"`
	TenantID   string    `json:"tenant_id"`
	TenantName string    `json:"tenant_name"`
	Name       string    `json:"name"`
	Email      string    `json:"email"`
	Role       string    `json:"role"`
	Operator   bool      `json:"operator"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Viewer is what the principal may see: their firm, or everything.
func (p Principal) Viewer() Viewer { return Viewer{TenantID: p.TenantID, Operator: p.Operator} }

// Display is how the principal is named in audit rows and triggers.
func (p Principal) Display() string {
	switch {
	case p.Email != "":
		return p.Email
	case p.Name != "":
		return p.Name
	default:
		return "local developer"
	}
}

// RoleName is the role as people write it ("Partner", "CA").
func (p Principal) RoleName() string {
	if n, ok := roleNames[p.Role]; ok {
		return n
	}
	return p.Role
}

// CanView: the dashboard, its history and Run Now.
func (p Principal) CanView() bool { return p.Operator || p.Role == RoleAdmin || p.Role == RolePartner }

// CanConfigure: pause and resume a job (a firm's admin: for the firm).
func (p Principal) CanConfigure() bool { return p.Operator || p.Role == RoleAdmin }

// CanConfigureAll: what holds for every firm (a pause for everyone, the schedules,
// the dead letters): the platform operator only.
func (p Principal) CanConfigureAll() bool { return p.Operator }

type principalKey struct{}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// Contact is someone to ask for access: one of the firm's admins.
type Contact struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

func (c Contact) String() string {
	if c.Email == "" {
		return c.Name
	}
	return c.Name + " (" + c.Email + ")"
}

// authState is what the gateway needs to know who is asking.
type authState struct {
	secret []byte
	// operatorSecret signs operator tokens; nil: nobody can sign in as the operator.
	operatorSecret []byte
	origins        map[string]bool
}

func newAuthState(cfg *Config) (*authState, error) {
	switch {
	case len(cfg.JWTSecret) == 0 && !cfg.DevMode:
		return nil, errors.New("gateway: AUTH_JWT_SECRET is required: set it to the HS256 secret the product signs its access tokens with, or turn on development mode (GATEWAY_DEV_MODE=true)")
	case len(cfg.JWTSecret) == 0:
		cfg.JWTSecret = make([]byte, MinSecretLen)
		_, _ = rand.Read(cfg.JWTSecret)
	case len(cfg.JWTSecret) < MinSecretLen && !cfg.DevMode:
		return nil, fmt.Errorf("gateway: AUTH_JWT_SECRET is %d bytes; use the product's JWT secret, which is at least %d", len(cfg.JWTSecret), MinSecretLen)
	}
	switch {
	case len(cfg.OperatorSecret) == 0 && cfg.DevMode:
		cfg.OperatorSecret = make([]byte, MinSecretLen)
		_, _ = rand.Read(cfg.OperatorSecret)
	case len(cfg.OperatorSecret) > 0 && len(cfg.OperatorSecret) < MinSecretLen && !cfg.DevMode:
		return nil, fmt.Errorf("gateway: OPERATOR_JWT_SECRET is %d bytes; use at least %d random bytes (openssl rand -hex 32)", len(cfg.OperatorSecret), MinSecretLen)
	case len(cfg.OperatorSecret) > 0 && string(cfg.OperatorSecret) == string(cfg.JWTSecret):
		return nil, errors.New("gateway: OPERATOR_JWT_SECRET must differ from AUTH_JWT_SECRET: whoever holds the product's secret must not be able to sign in as the platform operator")
	}
	a := &authState{secret: cfg.JWTSecret, operatorSecret: cfg.OperatorSecret, origins: map[string]bool{}}
	for _, o := range cfg.AllowedOrigins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("gateway: ALLOWED_ORIGINS entry %q is not an origin such as https://jobs.example.com", o)
		}
		a.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return a, nil
}

// IssueToken signs a token as the product does: HS256, `sub` the profile id, valid
// for ttl from now. The gateway uses it for development sign-in links; tests use it.
func IssueToken(secret []byte, profileID string, now time.Time, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("gateway: no secret to sign the token with")
	}
	claims := jwt.RegisteredClaims{
		Subject:   profileID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    "gstjobs-dev",
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// operatorClaims are an operator token's: who the operator is, for the audit log.
type operatorClaims struct {
	jwt.RegisteredClaims
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// IssueOperatorToken signs a platform operator's token: HS256 with the operator
// secret, `aud` OperatorAudience, `sub` the operator's id, and their name and e-mail.
func IssueOperatorToken(secret []byte, id, name, email string, now time.Time, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("gateway: no operator secret to sign the token with")
	}
	claims := operatorClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: id, Audience: jwt.ClaimStrings{OperatorAudience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			Issuer: "gstjobs",
		},
		Name: name, Email: email,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// OperatorSignInLink is a development link that signs in as the platform operator.
// It answers ErrNotDevMode outside development: there, operators get tokens from
// whoever holds OPERATOR_JWT_SECRET (see the README).
func (g *Gateway) OperatorSignInLink(ttl time.Duration) (string, error) {
	if !g.cfg.DevMode {
		return "", ErrNotDevMode
	}
	if g.URL() == "" {
		return "", errors.New("gateway: operator sign-in link: start the gateway first, so that it has an address")
	}
	return OperatorSignInLinkFor(g.auth.operatorSecret, g.URL(), ttl)
}

// OperatorSignInLinkFor is the development link that signs in as the platform operator
// at the gateway at baseURL whose operator secret is secret: for a launcher whose
// gateways run as processes of their own (make cluster). It must print none outside
// development.
func OperatorSignInLinkFor(secret []byte, baseURL string, ttl time.Duration) (string, error) {
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return "", fmt.Errorf("gateway: operator sign-in link: base URL %q is not an http(s) address", baseURL)
	}
	token, err := IssueOperatorToken(secret, "dev-operator", "Platform operator (development)", "", time.Now(), ttl)
	if err != nil {
		return "", err
	}
	u := base.JoinPath("signin")
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String(), nil
}

// SignInLinks makes one sign-in link per role for the development launcher to print:
// users maps a role to a profile id, baseURL is the dashboard's address, and each link
// signs its user in for ttl. Following one sets the session cookie and opens the
// dashboard. The launcher must print none outside development.
func SignInLinks(secret []byte, baseURL string, users map[string]string, ttl time.Duration) (map[string]string, error) {
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("gateway: sign-in links: base URL %q is not an http(s) address", baseURL)
	}
	if ttl <= 0 {
		return nil, errors.New("gateway: sign-in links: ttl must be positive")
	}
	now := time.Now()
	links := make(map[string]string, len(users))
	for role, id := range users {
		token, err := IssueToken(secret, id, now, ttl)
		if err != nil {
			return nil, err
		}
		u := base.JoinPath("signin")
		u.RawQuery = url.Values{"token": {token}}.Encode()
		links[role] = u.String()
	}
	return links, nil
}

// SignInLinks is the package function with this gateway's secret and address. It
// answers ErrNotDevMode outside development, so a launcher cannot print links there.
func (g *Gateway) SignInLinks(users map[string]string, ttl time.Duration) (map[string]string, error) {
	if !g.cfg.DevMode {
		return nil, ErrNotDevMode
	}
	if g.URL() == "" {
		return nil, errors.New("gateway: sign-in links: start the gateway first, so that it has an address")
	}
	return SignInLinks(g.auth.secret, g.URL(), users, ttl)
}

// tokenFrom finds the request's token: an Authorization header (scripts, the product's
// front end) or else the session cookie (the dashboard and its websocket).
func tokenFrom(r *http.Request) (raw string, fromCookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token), false
		}
		return "", false
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return c.Value, true
	}
	return "", false
}

// verified is what a valid token says: whose it is, until when, and whether it is
// the platform operator's.
type verified struct {
	subject  string
	expires  time.Time
	operator bool
	name     string
	email    string
}

// verify checks a token's signature and lifetime. A token for OperatorAudience is
// checked against the operator secret, any other against the product's.
func (g *Gateway) verify(raw string) (verified, error) {
	if raw == "" {
		return verified{}, fmt.Errorf("%w: send Authorization: Bearer <token>, or sign in", ErrNoToken)
	}
	var claims operatorClaims
	var operator bool
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		c, _ := t.Claims.(*operatorClaims)
		if c != nil && slices.Contains(c.Audience, OperatorAudience) {
			operator = true
			if len(g.auth.operatorSecret) == 0 {
				return nil, errors.New("operator sign-in is not set up on this gateway (OPERATOR_JWT_SECRET)")
			}
			return g.auth.operatorSecret, nil
		}
		return g.auth.secret, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(g.cfg.Clock.Now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return verified{}, fmt.Errorf("%w: sign in again", ErrExpiredToken)
	case err != nil:
		return verified{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	case claims.Subject == "":
		return verified{}, fmt.Errorf("%w: it names no user (no sub claim)", ErrInvalidToken)
	}
	v := verified{subject: claims.Subject, expires: claims.ExpiresAt.Time, operator: operator}
	if operator {
		v.name, v.email = claims.Name, claims.Email
	}
	if g.revoked.has(hashToken(raw), g.cfg.Clock.Now()) {
		// What it says is returned too: a development sign-in link may be followed
		// again (handleSignIn).
		return v, fmt.Errorf("%w: this session ended with Sign out; sign in again", ErrSignedOut)
	}
	return v, nil
}

// reissue signs a new token for what a signed-out one said, until the same expiry: in
// development, where the gateway holds the secrets and prints sign-in links that last
// 12 hours, a link signed out of signs in again, with a new session.
func (g *Gateway) reissue(v verified) (string, error) {
	now := g.cfg.Clock.Now()
	reg := jwt.RegisteredClaims{Subject: v.subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(v.expires),
		Issuer: "gstjobs-dev", ID: uuid.NewString()}
	if !v.operator {
		return jwt.NewWithClaims(jwt.SigningMethodHS256, reg).SignedString(g.auth.secret)
	}
	reg.Audience, reg.Issuer = jwt.ClaimStrings{OperatorAudience}, "gstjobs"
	return jwt.NewWithClaims(jwt.SigningMethodHS256, operatorClaims{RegisteredClaims: reg, Name: v.name, Email: v.email}).SignedString(g.auth.operatorSecret)
}

const principalsQuery = `
SELECT p.id::text, p.tenant_id::text, t.name, p.full_name, coalesce(p.email, ''), p.role
FROM profiles p JOIN tenants t ON t.id = p.tenant_id
WHERE p.id = ANY($1::uuid[])`

// profileLookups reads the people behind requests that arrive together in one query:
// the first is asked alone, at once; those that arrive while a query runs go together
// in the next, so a thousand dashboards connecting at once cost a few queries, not a
// thousand. Each request still reads its person as they are now.
type profileLookups struct {
	mu      sync.Mutex
	waiting map[string][]chan profileFound
	running bool
}

type profileFound struct {
	p     Principal
	found bool
	err   error
}

// maxProfilesPerQuery bounds one look-up query.
const maxProfilesPerQuery = 1000

// lookupProfile reads one profile, in a query with the others asked meanwhile.
func (g *Gateway) lookupProfile(ctx context.Context, id string) (Principal, bool, error) {
	ch := make(chan profileFound, 1)
	l := &g.profiles
	l.mu.Lock()
	if l.waiting == nil {
		l.waiting = map[string][]chan profileFound{}
	}
	l.waiting[id] = append(l.waiting[id], ch)
	runner := !l.running
	l.running = true
	l.mu.Unlock()
	if runner {
		// Asked alone: this request runs the query itself, with whoever asked
		// meanwhile; those who ask during it are answered by a goroutine after.
		if g.lookupBatch() {
			go g.lookupProfiles()
		}
	}
	select {
	case f := <-ch:
		return f.p, f.found, f.err
	case <-ctx.Done():
		return Principal{}, false, ctx.Err()
	}
}

// lookupProfiles answers the waiting look-ups, a query at a time, until none waits.
func (g *Gateway) lookupProfiles() {
	for g.lookupBatch() {
	}
}

// lookupBatch answers the look-ups waiting now, in one query, and reports whether more
// wait; when none does, the look-ups are idle again (the next to ask runs the query).
func (g *Gateway) lookupBatch() (more bool) {
	l := &g.profiles
	l.mu.Lock()
	batch := make(map[string][]chan profileFound, min(len(l.waiting), maxProfilesPerQuery))
	for id, chans := range l.waiting {
		if len(batch) == maxProfilesPerQuery {
			break
		}
		batch[id] = chans
		delete(l.waiting, id)
	}
	if len(batch) == 0 {
		l.running = false
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	found, err := g.readProfiles(ids)
	for id, chans := range batch {
		p, ok := found[id]
		for _, ch := range chans {
			ch <- profileFound{p: p, found: ok, err: err}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.waiting) == 0 {
		l.running = false
		return false
	}
	return true
}

func (g *Gateway) readProfiles(ids []string) (map[string]Principal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := g.cfg.Pool.Query(ctx, principalsQuery, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[string]Principal, len(ids))
	var p Principal
	if _, err := pgx.ForEachRow(rows, []any{&p.UserID, &p.TenantID, &p.TenantName, &p.Name, &p.Email, &p.Role}, func() error {
		found[p.UserID] = p
		return nil
	}); err != nil {
		return nil, err
	}
	return found, nil
}

// principal authenticates a request. The role and firm come from profiles on every
// request, so a changed role takes effect at once.
func (g *Gateway) principal(r *http.Request) (Principal, bool, error) {
	raw, fromCookie := tokenFrom(r)
	vt, err := g.verify(raw)
	if err != nil {
		return Principal{}, fromCookie, err
	}
	sub, exp := vt.subject, vt.expires
	if vt.operator {
		name := vt.name
		if name == "" {
			name = "Platform operator " + sub
		}
		return Principal{UserID: "operator:" + sub, Name: name, Email: vt.email, Role: RoleOperator, Operator: true, ExpiresAt: exp}, fromCookie, nil
	}
	id, err := uuid.Parse(sub)
	if err != nil {
		return Principal{}, fromCookie, fmt.Errorf("%w: the token's subject is not a profile id", ErrUnknownUser)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p, found, err := g.lookupProfile(ctx, id.String())
	switch {
	case err != nil:
		return Principal{}, fromCookie, fmt.Errorf("auth: look up profile: %w", err)
	case !found:
		return Principal{}, fromCookie, fmt.Errorf("%w: no profile %s", ErrUnknownUser, sub)
	}
	p.ExpiresAt = exp
	return p, fromCookie, nil
}

func isAuthError(err error) bool {
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrExpiredToken) || errors.Is(err, ErrUnknownUser) ||
		errors.Is(err, ErrSignedOut)
}

// admins lists the firm's admins: whom a refused user should ask.
func (g *Gateway) admins(ctx context.Context, tenantID string) []Contact {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := g.cfg.Pool.Query(ctx, `SELECT full_name, coalesce(email, '') FROM profiles WHERE tenant_id = $1 AND role = 'admin' ORDER BY full_name`, tenantID)
	if err != nil {
		g.log.Warn("cannot list the firm's admins", "tenant_id", tenantID, "err", err)
		return nil
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Contact])
	if err != nil {
		g.log.Warn("cannot list the firm's admins", "tenant_id", tenantID, "err", err)
	}
	return list
}

func askAdmins(admins []Contact) string {
	if len(admins) == 0 {
		return "Ask your firm's administrator."
	}
	names := make([]string, len(admins))
	for i, a := range admins {
		names[i] = a.String()
	}
	if len(names) == 1 {
		return "Ask your firm's admin, " + names[0] + "."
	}
	return "Ask one of your firm's admins: " + strings.Join(names, ", ") + "."
}

func refusedMessage(p Principal, admins []Contact) string {
	return fmt.Sprintf("Background jobs monitoring is available to the Admin and Partner roles only, and you are signed in as %s (%s) at %s. %s",
		p.Name, p.RoleName(), p.TenantName, askAdmins(admins))
}

func adminOnlyMessage(p Principal, admins []Contact) string {
	return fmt.Sprintf("Only admins can pause or resume a job for the firm, and you are signed in as %s (%s). %s",
		p.Name, p.RoleName(), askAdmins(admins))
}

// requireViewer authenticates API and websocket requests: 401 without a valid token,
// 403 for roles other than admin and partner, 403 for a change sent with the cookie
// from another site's page.
func (g *Gateway) requireViewer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, fromCookie, err := g.principal(r)
		if err != nil {
			g.refuseUnauthenticated(w, r, fromCookie, err)
			return
		}
		if !p.CanView() {
			admins := g.admins(r.Context(), p.TenantID)
			writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": refusedMessage(p, admins), "role": p.Role, "admins": admins})
			return
		}
		if fromCookie && !safeMethod(r.Method) && !g.sameOriginRequest(r) {
			writeError(w, http.StatusForbidden, "this change came from another site's page: send it from the dashboard, or with an Authorization header")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// requireOperator guards what holds for every firm. what says, in words for a firm's
// admin who tries, what the route does.
func (g *Gateway) requireOperator(what string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principalFrom(r.Context())
			if !p.CanConfigureAll() {
				writeJSONResponse(w, http.StatusForbidden, map[string]any{
					"error": what + ". You are signed in as " + p.Name + " (" + p.RoleName() + ") of " + p.TenantName +
						"; ask the people who run this deployment.",
					"role": p.Role})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// requireAdmin guards pause and resume.
func (g *Gateway) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		if !p.CanConfigure() {
			admins := g.admins(r.Context(), p.TenantID)
			writeJSONResponse(w, http.StatusForbidden, map[string]any{"error": adminOnlyMessage(p, admins), "role": p.Role, "admins": admins})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) refuseUnauthenticated(w http.ResponseWriter, r *http.Request, fromCookie bool, err error) {
	if !isAuthError(err) {
		g.fail(w, r, err)
		return
	}
	if fromCookie {
		clearSession(w, r)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="gstjobs"`)
	writeError(w, http.StatusUnauthorized, err.Error())
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkOrigin accepts websocket upgrades from the gateway's own pages and from
// ALLOWED_ORIGINS. A client that sends no Origin is not a browser, and a non-browser
// cannot borrow a user's cookie.
func (g *Gateway) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	return g.originAllowed(r, origin)
}

func (g *Gateway) originAllowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return g.auth.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// sameOriginRequest is the check for changes made with the cookie: SameSite=Strict
// already keeps other sites' requests from carrying it; this holds even in a browser
// that ignores SameSite.
//
// A form our own pages post (Sign out) carries `Origin: null`: the pages are served
// with Referrer-Policy: no-referrer, under which the Fetch standard hides a form's
// origin. Sec-Fetch-Site still tells where it came from, and only same-origin will do.
func (g *Gateway) sameOriginRequest(r *http.Request) bool {
	switch origin := r.Header.Get("Origin"); origin {
	case "null":
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	case "":
	default:
		return g.originAllowed(r, origin)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time, now time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/",
		Expires: expires, MaxAge: max(1, int(expires.Sub(now).Seconds())),
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode,
	})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode,
	})
}

// handleSignIn is GET /signin?token=…: it checks the token as every request does,
// keeps it in the session cookie and opens the dashboard. The cookie lives as long as
// the token, never longer.
//
// The answer is a page that moves on to / itself rather than a redirect: a redirect
// that began on another site (the product linking here) would arrive without the
// SameSite=Strict cookie, a navigation from this page arrives with it.
func (g *Gateway) handleSignIn(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("token")
	if raw == "" {
		g.renderSignInNeeded(w, r, http.StatusBadRequest, "This sign-in link has no token.")
		return
	}
	vt, err := g.verify(raw)
	if errors.Is(err, ErrSignedOut) && g.cfg.DevMode {
		raw, err = g.reissue(vt)
	}
	if err == nil {
		r2 := r.Clone(r.Context())
		r2.Header.Set("Authorization", "Bearer "+raw)
		_, _, err = g.principal(r2)
	}
	sub, exp := vt.subject, vt.expires
	if err != nil {
		if !isAuthError(err) {
			g.renderPage(w, http.StatusServiceUnavailable, page{Title: "Sign-in unavailable", Heading: "Sign-in is unavailable right now", Lines: []string{"The gateway cannot reach its database: " + err.Error(), "Try the link again in a minute."}})
			return
		}
		g.renderSignInNeeded(w, r, http.StatusUnauthorized, "This sign-in link does not work: "+err.Error()+".")
		return
	}
	g.log.Info("signed in", "user_id", sub)
	setSession(w, r, raw, exp, g.cfg.Clock.Now())
	g.renderPage(w, http.StatusOK, page{Title: "Signed in", Heading: "Signed in", Lines: []string{"Opening the dashboard…"}, Refresh: "/", Link: "/", LinkText: "Open the dashboard"})
}

// handleSignOut is POST /signout: it forgets the cookie and revokes its token until
// the token expires, which closes every websocket opened with it (sessions.go). Like
// every change, it must come from the dashboard's own pages: another site's page may
// not sign anyone out.
func (g *Gateway) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if !g.sameOriginRequest(r) {
		g.renderPage(w, http.StatusForbidden, page{Title: "Sign-out refused", Heading: "This sign-out came from another site",
			Lines: []string{"A page on another site asked to sign you out of Background Jobs, and nothing was changed.",
				"To sign out, use Sign out on the dashboard."}})
		return
	}
	if raw, _ := tokenFrom(r); raw != "" {
		// A token that is expired, forged or already signed out has nothing to revoke.
		if vt, err := g.verify(raw); err == nil {
			g.signOut(raw, vt.expires)
			g.log.Info("signed out", "user_id", vt.subject, "operator", vt.operator)
		}
	}
	clearSession(w, r)
	g.renderSignInNeeded(w, r, http.StatusOK, "You have signed out.")
}
