package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/demo"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/services/gateway"
)

// metric reads one sample of the gateway's /metrics, e.g.
// `gstjobs_gateway_session_checks_total{result="ok"}`; 0 when it is not there yet.
func (s *system) metric(t *testing.T, sample string) float64 {
	t.Helper()
	res := s.do(t, request{method: "GET", path: "/metrics"})
	sc := bufio.NewScanner(bytes.NewReader(res.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s = %q", sample, v)
			}
			return f
		}
	}
	return 0
}

// What is tried: Mehta's admin presses Run Now five times within a second, the
// partner once, and the admin again after 6 and 12 seconds (on the fake clock).
// What must hold: 3 presses go through, then 429 with Retry-After in whole seconds
// and an error a person understands; a refused press stores nothing (no audit row, no
// trigger on NATS); the partner has their own allowance; one press more is allowed
// every 12 s; the refusals are counted in the metrics.
func TestRunNowIsRateLimited(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now())
	s := startSystem(t, systemOptions{clock: clock})
	const job = catalog.CheckSLAAndOverdue
	triggers, err := s.NATS.NC.SubscribeSync(events.APITriggerSubject(job))
	if err != nil {
		t.Fatal(err)
	}
	admin := token(t, mehtaAdmin)
	press := func(tok string) response {
		return s.do(t, request{method: "POST", path: "/api/jobs/" + job + "/run", body: `{"reason":"again"}`, bearer: tok})
	}
	refused := func(res response, presses, wait int) {
		t.Helper()
		if res.code != http.StatusTooManyRequests {
			t.Fatalf("press %d = %d, want 429: %s", presses, res.code, res.body)
		}
		if got := res.header.Get("Retry-After"); got != strconv.Itoa(wait) {
			t.Errorf("Retry-After = %q, want %d", got, wait)
		}
		want := fmt.Sprintf("You have pressed Run Now %d times in the last minute; try again in %d s. Runs already queued will still run.", presses, wait)
		if got := res.errorText(t); got != want {
			t.Errorf("the refusal says %q, want %q", got, want)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Error("the 429 lacks X-Content-Type-Options: nosniff")
		}
		if res.json(t)["retry_after_seconds"] != float64(wait) {
			t.Errorf("retry_after_seconds = %v, want %d", res.json(t)["retry_after_seconds"], wait)
		}
	}
	for i := range gateway.RunNowBurst {
		if res := press(admin); res.code != http.StatusAccepted {
			t.Fatalf("press %d = %d, want 202: %s", i+1, res.code, res.body)
		}
	}
	refused(press(admin), 4, 12)
	refused(press(admin), 5, 12)
	if res := press(token(t, demo.UserPartner)); res.code != http.StatusAccepted {
		t.Errorf("the partner's first press = %d, want 202 (their own allowance): %s", res.code, res.body)
	}

	var rows int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action_type = 'background_job_trigger' AND user_id = $1`, mehtaAdmin).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != gateway.RunNowBurst {
		t.Errorf("the admin's trigger rows = %d, want %d: a refused press must store nothing", rows, gateway.RunNowBurst)
	}
	// Every accepted press was published before it was answered; after a round trip to
	// the server, every one of them has reached this subscription.
	if err := s.NATS.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := triggers.Pending(); n != gateway.RunNowBurst+1 {
		t.Errorf("triggers on NATS = %d, want %d (the admin's 3 and the partner's 1)", n, gateway.RunNowBurst+1)
	}

	clock.Advance(6 * time.Second)
	refused(press(admin), 6, 6)
	clock.Advance(6 * time.Second)
	if res := press(admin); res.code != http.StatusAccepted {
		t.Errorf("a press 12 s later = %d, want 202: %s", res.code, res.body)
	}
	if got := s.metric(t, "gstjobs_gateway_run_now_rate_limited_total"); got != 3 {
		t.Errorf("refusals counted = %v, want 3", got)
	}
}
