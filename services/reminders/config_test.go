package reminders_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/jobservice"
	"github.com/lexhq/gstjobs/internal/ops"
	"github.com/lexhq/gstjobs/services/reminders"
)

// What is tried: the service's settings from the environment, as jobservice.Main
// reads them (before any database or NATS exists).
// What must hold: defaults work with no variables; bad values are reported with the
// variable's name and an example, and the password of SMTP_URL is never shown.
func TestJobsFromEnvironment(t *testing.T) {
	// t.Setenv: not parallel.
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings; none: no error
	}{
		{"nothing set: in-app only, 7,3,1", nil, nil},
		{"e-mail on", map[string]string{"SMTP_URL": "smtps://jobs:pw@mail.firm.example", "SMTP_FROM": "GST Jobs <jobs@firm.example>"}, nil},
		{"thresholds", map[string]string{"DEADLINE_THRESHOLDS": "10, 5,2,0"}, nil},
		{"SMTP_FROM missing", map[string]string{"SMTP_URL": "smtp://mail.firm.example"}, []string{"SMTP_FROM is not set", "noreply@firm.example"}},
		{"SMTP_FROM invalid", map[string]string{"SMTP_URL": "smtp://mail.firm.example", "SMTP_FROM": "jobs at firm"}, []string{"SMTP_FROM", `"jobs at firm" is not an e-mail address`}},
		{"SMTP_URL wrong scheme", map[string]string{"SMTP_URL": "https://u:hunter2@mail.firm.example", "SMTP_FROM": "jobs@firm.example"}, []string{"SMTP_URL", "smtp://", "smtps://"}},
		{"SMTP_URL bad port", map[string]string{"SMTP_URL": "smtp://u:hunter2@mail.firm.example:abc", "SMTP_FROM": "jobs@firm.example"}, []string{"SMTP_URL", "not a URL"}},
		{"thresholds not numbers", map[string]string{"DEADLINE_THRESHOLDS": "7,three,1"}, []string{"DEADLINE_THRESHOLDS", `"three" is not a whole number`, "7,3,1"}},
		{"thresholds repeated", map[string]string{"DEADLINE_THRESHOLDS": "7,3,3"}, []string{"DEADLINE_THRESHOLDS", "lists 3 twice"}},
		{"thresholds negative", map[string]string{"DEADLINE_THRESHOLDS": "7,-1"}, []string{"DEADLINE_THRESHOLDS", "between 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"SMTP_URL", "SMTP_FROM", "DEADLINE_THRESHOLDS"} {
				t.Setenv(v, tc.env[v])
			}
			jobs, err := reminders.Jobs(jobservice.Deps{Env: &ops.Env{}})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Jobs: %v", err)
				}
				names := make([]string, 0, len(jobs))
				for name := range jobs {
					names = append(names, name)
				}
				slices.Sort(names)
				if want := []string{catalog.CheckUpcomingDeadlines, catalog.SendHearingReminders}; !slices.Equal(names, want) {
					t.Errorf("jobs = %q, want %q", names, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Jobs accepted %v; want an error mentioning %q", tc.env, tc.wantErr)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the SMTP password: %q", err)
			}
		})
	}
}

// What is tried: a time zone PostgreSQL cannot be told about by name.
// What must hold: New refuses it, naming JOBS_TIMEZONE.
func TestNewRejectsUnnamedZone(t *testing.T) {
	t.Parallel()
	_, err := reminders.New(jobservice.Deps{Location: time.Local}, reminders.Config{})
	if err == nil || !strings.Contains(err.Error(), "JOBS_TIMEZONE") {
		t.Errorf("New with time.Local: err = %v, want one naming JOBS_TIMEZONE", err)
	}
}

// What is tried: thresholds written in the forms people use.
// What must hold: they parse, in the order given.
func TestParseThresholds(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]int{"7,3,1": {7, 3, 1}, " 1 , 30 ": {1, 30}, "0": {0}} {
		got, err := reminders.ParseThresholds(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseThresholds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7,,1", "7;3", "400"} {
		if _, err := reminders.ParseThresholds(in); err == nil {
			t.Errorf("ParseThresholds(%q) accepted it", in)
		}
	}
}
