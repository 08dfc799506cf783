package tenancy

import (
	"strings"
	"testing"

	"github.com/lexhq/gstjobs/internal/events"
)

func TestExpandPutsTheFilterWhereTheSQLSaysCovered(t *testing.T) {
	got := Expand("WHERE status = 'active' AND covered(c.tenant_id) AND x = covered(tenant_id)")
	if strings.Contains(got, "covered(") {
		t.Fatalf("Expand left a covered(...) in %q", got)
	}
	for _, want := range []string{Filter("c.tenant_id"), Filter("tenant_id")} {
		if !strings.Contains(got, want) {
			t.Errorf("Expand = %q, want it to hold %q", got, want)
		}
	}
}

// A nil list bound as a NULL array would make "x = ANY(NULL)" NULL, and the filter with
// it: Args always binds empty lists.
func TestArgsNeverBindNil(t *testing.T) {
	a := Args(events.Scope{})
	for _, k := range []string{"scope_tenants", "scope_skip"} {
		if v, ok := a[k].([]string); !ok || v == nil {
			t.Errorf("Args()[%q] = %#v, want an empty, non-nil list", k, a[k])
		}
	}
	if a["scope_all"] != false {
		t.Errorf("a zero scope covers every firm: %v", a["scope_all"])
	}
}
