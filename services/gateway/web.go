package gateway

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
)

// The dashboard is plain HTML, CSS and JavaScript embedded in the binary: no build
// step, no inline script or style, so the Content-Security-Policy can forbid both.
//
//go:embed web/index.html web/app.js web/app.css web/favicon.svg
var webFS embed.FS

//go:embed web/pages/page.html
var pagesFS embed.FS

var pageTemplate = template.Must(template.ParseFS(pagesFS, "web/pages/page.html"))

// staticFiles are the only files served as they are; everything else under / is 404.
var staticFiles = map[string]string{
	"/app.js":      "text/javascript; charset=utf-8",
	"/app.css":     "text/css; charset=utf-8",
	"/favicon.svg": "image/svg+xml",
}

func (g *Gateway) securityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// connect-src names the websocket of this very host: 'self' does not cover ws: in
	// every browser, and a bare ws: would allow any host.
	wsScheme := "ws://"
	if isHTTPS(r) {
		wsScheme = "wss://"
	}
	h.Set("Content-Security-Policy", strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self' " + wsScheme + r.Host,
		"form-action 'self'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; "))
}

// serveWeb serves the dashboard's static files.
func (g *Gateway) serveWeb(w http.ResponseWriter, r *http.Request) {
	g.securityHeaders(w, r)
	ctype, ok := staticFiles[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, err := webFS.ReadFile("web" + r.URL.Path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

// serveDashboard is GET /: the dashboard for admins and partners, a page that says why
// not for everyone else.
func (g *Gateway) serveDashboard(w http.ResponseWriter, r *http.Request) {
	p, fromCookie, err := g.principal(r)
	switch {
	case err != nil && isAuthError(err):
		if fromCookie {
			clearSession(w, r)
		}
		g.renderSignInNeeded(w, r, http.StatusUnauthorized, sentence(err))
		return
	case err != nil:
		g.renderPage(w, http.StatusServiceUnavailable, page{Title: "Unavailable", Heading: "The dashboard is unavailable right now",
			Lines: []string{"The gateway cannot reach its database: " + err.Error(), "Reload the page in a minute."}})
		return
	case !p.CanView():
		admins := g.admins(r.Context(), p.TenantID)
		g.renderPage(w, http.StatusForbidden, page{
			Title:   "No access to Background Jobs",
			Heading: "You don't have access to Background Jobs",
			Lines: []string{
				"Background jobs monitoring is available to the Admin and Partner roles only.",
				"You are signed in as " + p.Name + " (" + p.RoleName() + ") at " + p.TenantName + ".",
			},
			Ask:     "To get access, ask your firm's admin:",
			Admins:  admins,
			SignOut: true,
		})
		return
	}
	data, err := webFS.ReadFile("web/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	g.securityHeaders(w, r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
}

// page is a server-rendered page: sign-in needed, access refused, signed in.
type page struct {
	Title, Heading string
	Lines          []string
	Ask            string
	Admins         []Contact
	// Refresh moves the browser on to this address at once.
	Refresh        string
	Link, LinkText string
	SignOut        bool
}

func (g *Gateway) renderPage(w http.ResponseWriter, code int, p page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		g.log.Error("render page", "err", err)
		http.Error(w, p.Heading, code)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (g *Gateway) renderSignInNeeded(w http.ResponseWriter, r *http.Request, code int, reason string) {
	how := "Open the dashboard from the product (your profile menu → Dev Mode → Background Jobs), which signs you in."
	if g.cfg.DevMode {
		how = "Development mode: use one of the sign-in links that the launcher (make run) printed in its terminal, one for each demo role."
	}
	g.renderPage(w, code, page{
		Title:   "Sign in to Background Jobs",
		Heading: "Sign in to Background Jobs",
		Lines:   []string{reason, how, "Background jobs monitoring is available to the Admin and Partner roles."},
	})
}

// sentence makes an error read as a sentence on a page.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
