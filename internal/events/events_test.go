package events

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeTrigger(t *testing.T) {
	cases := []struct {
		name, body string
		want       Trigger
		wantErr    string
	}{
		{"empty body is a trigger with no reason", "", Trigger{}, ""},
		{"whitespace body", "  \n", Trigger{}, ""},
		{"reason and requester", `{"reason":"before client meeting","requested_by":"dev@firm"}`, Trigger{Reason: "before client meeting", RequestedBy: "dev@firm"}, ""},
		{"unknown fields are ignored", `{"reason":"x","extra":1}`, Trigger{Reason: "x"}, ""},
		{"not JSON", `{"reason":`, Trigger{}, "not valid JSON"},
		{"plain text", `run please`, Trigger{}, "not valid JSON"},
		{"array", `[1,2]`, Trigger{}, "must be a JSON object, not an array"},
		{"string", `"x"`, Trigger{}, "must be a JSON object, not a string"},
		{"wrong type", `{"reason":42}`, Trigger{}, "cannot unmarshal"},
		{"reason too long", `{"reason":"` + strings.Repeat("a", MaxReasonLen+1) + `"}`, Trigger{}, "longer than 500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeTrigger([]byte(c.body))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("DecodeTrigger(%q) error = %v, want ErrInvalidPayload mentioning %q", c.body, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("DecodeTrigger(%q) = %+v, %v; want %+v", c.body, got, err, c.want)
			}
		})
	}
}

func TestSubjectsAndMsgID(t *testing.T) {
	if got := ScheduleSubject("check-sla-and-overdue"); got != "jobs.schedule.check-sla-and-overdue" {
		t.Errorf("ScheduleSubject = %q", got)
	}
	if got := JobFromSubject("jobs.result.send-hearing-reminders"); got != "send-hearing-reminders" {
		t.Errorf("JobFromSubject = %q", got)
	}
	ist := time.FixedZone("IST", 5*3600+1800)
	slot := time.Date(2026, 1, 2, 8, 0, 0, 0, ist)
	if got := ScheduleMsgID("send-hearing-reminders", slot); got != "send-hearing-reminders@2026-01-02T02:30:00Z" {
		t.Errorf("ScheduleMsgID = %q: the same instant must give the same id in any zone", got)
	}
}

func TestSummaryUsesTheGuidesWords(t *testing.T) {
	ok := Result{JobName: "check-sla-and-overdue", Status: StatusSuccess, Results: map[string]any{"overdue_tasks": 5}}
	if got := ok.Summary(); got != "Job executed successfully - 5 overdue tasks found" {
		t.Errorf("success summary = %q", got)
	}
	bad := Result{JobName: "check-sla-and-overdue", Status: StatusFailed}
	if got := bad.Summary(); got != "Job execution failed - Check logs for details" {
		t.Errorf("failure summary = %q", got)
	}
}

func TestDecodeResultNeedsRunID(t *testing.T) {
	if _, err := DecodeResult([]byte(`{"job_name":"x","status":"success"}`)); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("a run result without run_id must be invalid, got %v", err)
	}
	if _, err := DecodeResult([]byte(`{"job_name":"x","status":"rejected","error_message":"bad"}`)); err != nil {
		t.Errorf("a rejection needs no run_id: %v", err)
	}
}
