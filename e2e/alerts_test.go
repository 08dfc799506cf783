package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
)

// What is tried: deploy/prometheus/alerts.yml, loaded with Prometheus's own rule parser,
// against the metrics a running system exports (the gateway's /metrics and the job
// services' registry) after a run, a poisoned run order and a persisted result.
// What must hold: every rule parses, has a summary, and names only metrics the system
// exports; and the metrics carry no firm's id or name as a label value.
func TestAlertRulesUseMetricsTheSystemExports(t *testing.T) {
	groups, errs := rulefmt.ParseFile("../deploy/prometheus/alerts.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("the alert rules do not load: %v", errs)
	}
	s := startStack(t, stackOptions{})
	results := natsCollect(t, s, events.ResultSubject(catalog.CheckSLAAndOverdue))
	if err := s.nats.NC.Publish(events.TriggerSubject(catalog.CheckSLAAndOverdue), nil); err != nil {
		t.Fatal(err)
	}
	r := nextResultOf(t, results, catalog.CheckSLAAndOverdue)
	waitFor(t, "the run in audit_log", func() bool { return s.auditRows(r.RunID) == 1 })
	if _, err := s.nats.JS.Publish(context.Background(), events.RunSubject(catalog.CheckSLAAndOverdue), []byte("not an order")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poisoned order in JOBS_DEAD", func() bool {
		st, err := s.nats.JS.Stream(context.Background(), bus.StreamDead)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 1
	})

	exported := map[string]bool{}
	var text strings.Builder
	res, err := http.Get(strings.TrimSuffix(s.gw.URL(), "/") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	text.Write(body)
	families, err := s.deps.Registry.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		exported[f.GetName()] = true
		_, _ = expfmt.MetricFamilyToText(&text, f)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fromGateway, err := tp.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the gateway's /metrics does not parse: %v", err)
	}
	for name := range fromGateway {
		exported[name] = true
	}

	rules := 0
	for _, g := range groups.Groups {
		for _, rule := range g.Rules {
			rules++
			if rule.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", rule.Alert)
			}
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(rule.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", rule.Alert, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					name := strings.TrimSuffix(vs.Name, "_bucket")
					if !exported[vs.Name] && !exported[name] {
						t.Errorf("alert %s uses %s, which the system does not export", rule.Alert, vs.Name)
					}
				}
				return nil
			})
		}
	}
	if rules < 6 {
		t.Errorf("%d alert rules, want at least the stale, failing, backlog, dead letter and NATS node ones", rules)
	}
	for _, firm := range []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "Mehta", "Iyer"} {
		if strings.Contains(text.String(), firm) {
			t.Errorf("the metrics name a firm (%s): labels must not", firm)
		}
	}
}
