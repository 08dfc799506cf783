package sla

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/worker"
)

// TestRunLogLines: each line a job logs about a run names the run and the job, and
// adds no key the service's logger already has.
func TestRunLogLines(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.tenant("Empty Chambers")
	rec := &recorder{mu: &sync.Mutex{}, lines: new([]logLine)}
	log := slog.New(rec).With("service", "sla")
	f.jobs = newJobs(jobservice.Deps{Pool: f.pool, Log: log}, defaultConfig())
	for _, name := range []string{catalog.CheckSLAAndOverdue, catalog.AutomationHealthCheck} {
		job, _ := catalog.Lookup(name)
		run := worker.Run{ID: uuid.NewString(), Job: job, Now: t0}
		*rec.lines = nil
		if _, err := f.jobs[name](t.Context(), run); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(*rec.lines) == 0 {
			t.Fatalf("%s logged nothing, want a line about the run", name)
		}
		for _, l := range *rec.lines {
			seen := map[string]int{}
			for _, a := range l.attrs {
				seen[a.Key]++
			}
			for k, n := range seen {
				if n > 1 {
					t.Errorf("%s: line %q has %s %d times, want once", name, l.msg, k, n)
				}
			}
			if got := l.value("run_id"); got != run.ID {
				t.Errorf("%s: line %q has run_id=%q, want %q", name, l.msg, got, run.ID)
			}
			if got := l.value("job_name"); got != name {
				t.Errorf("%s: line %q has job_name=%q, want %q", name, l.msg, got, name)
			}
		}
	}
}

type logLine struct {
	msg   string
	attrs []slog.Attr
}

func (l logLine) value(key string) string {
	for _, a := range l.attrs {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// recorder keeps every line's attributes, those given to With first.
type recorder struct {
	mu    *sync.Mutex
	lines *[]logLine
	with  []slog.Attr
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logLine{msg: rec.Message, attrs: append([]slog.Attr(nil), r.with...)}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs = append(l.attrs, a)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.lines = append(*r.lines, l)
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r2 := *r
	r2.with = append(r.with[:len(r.with):len(r.with)], as...)
	return &r2
}

func (r *recorder) WithGroup(string) slog.Handler { return r }
