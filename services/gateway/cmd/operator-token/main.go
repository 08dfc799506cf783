// Command operator-token signs a platform operator's sign-in token with
// OPERATOR_JWT_SECRET, for the people who run the deployment. The token is sent as
// `Authorization: Bearer <token>`, or opened in a browser as <gateway>/signin?token=<token>.
//
//	OPERATOR_JWT_SECRET=... go run ./services/gateway/cmd/operator-token -name "Ops On Call" -email oncall@example.com [-ttl 12h] [-url https://jobs.example.com/]
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lexhq/gstjobs/services/gateway"
)

func main() {
	name := flag.String("name", "", "the operator's name, as the audit log will show it (required)")
	email := flag.String("email", "", "the operator's e-mail")
	id := flag.String("id", "", "the operator's id (default: the e-mail, else the name)")
	ttl := flag.Duration("ttl", 12*time.Hour, "how long the token is valid")
	base := flag.String("url", "", "the gateway's address: print a sign-in link instead of the token")
	flag.Parse()
	secret := os.Getenv("OPERATOR_JWT_SECRET")
	var problems []string
	if len(secret) < gateway.MinSecretLen {
		problems = append(problems, fmt.Sprintf("OPERATOR_JWT_SECRET must be the gateway's operator secret (at least %d bytes)", gateway.MinSecretLen))
	}
	if strings.TrimSpace(*name) == "" {
		problems = append(problems, "-name is required: the audit log names the operator who acted")
	}
	if *ttl <= 0 || *ttl > 7*24*time.Hour {
		problems = append(problems, "-ttl must be positive and at most 168h")
	}
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "operator-token: "+strings.Join(problems, "; "))
		os.Exit(2)
	}
	sub := *id
	if sub == "" {
		sub = *email
	}
	if sub == "" {
		sub = *name
	}
	token, err := gateway.IssueOperatorToken([]byte(secret), sub, *name, *email, time.Now(), *ttl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "operator-token:", err)
		os.Exit(1)
	}
	if *base == "" {
		fmt.Println(token)
		return
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(os.Stderr, "operator-token: -url %q is not the gateway's http(s) address\n", *base)
		os.Exit(2)
	}
	u = u.JoinPath("signin")
	u.RawQuery = url.Values{"token": {token}}.Encode()
	fmt.Println(u.String())
}
