package sla

import (
	"slices"
	"strings"
	"testing"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/ops"
)

// Jobs builds the two catalog jobs without touching the database (no pool yet, as
// when jobservice checks the configuration), and rejects bad settings with an error
// that names the variable.
func TestJobs(t *testing.T) {
	jobs, err := Jobs(jobservice.Deps{Env: &ops.Env{}})
	if err != nil {
		t.Fatalf("Jobs with no settings: %v", err)
	}
	var names []string
	for name := range jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{catalog.AutomationHealthCheck, catalog.CheckSLAAndOverdue}; !slices.Equal(names, want) {
		t.Errorf("jobs = %v, want %v", names, want)
	}

	cases := []struct{ name, value string }{
		{envMinFailures, "0"},
		{envFailurePercent, "101"},
		{envMaxFires, "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			env := &ops.Env{}
			if _, err := Jobs(jobservice.Deps{Env: env}); err == nil || !strings.Contains(err.Error(), tc.name+"="+tc.value) {
				t.Errorf("Jobs with %s=%s: error %v, want one naming the variable and value", tc.name, tc.value, err)
			}
		})
	}
	t.Run("not a number", func(t *testing.T) {
		t.Setenv(envMaxFires, "lots")
		env := &ops.Env{}
		if _, err := Jobs(jobservice.Deps{Env: env}); err != nil {
			t.Fatalf("Jobs: %v (a value that is not a number is ops.Env's to report)", err)
		}
		if err := env.Err(); err == nil || !strings.Contains(err.Error(), envMaxFires) {
			t.Errorf("env.Err() = %v, want it to name %s", err, envMaxFires)
		}
	})
}
