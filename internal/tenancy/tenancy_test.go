package tenancy

import (
	"slices"
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

// Tried: the scopes of daily jobs' slots bound for SQL.
// Must hold: a slot's firms that did not pause are bound as named firms (an index
// lookup, not "every firm"); a slot for every firm binds the firms it is not for, paused
// or elsewhere, as skipped; a firm that asked itself is never skipped.
func TestArgsOfASlotsFirms(t *testing.T) {
	a := Args(events.Scope{Firms: []string{"f2", "f1", "f3"}, Skip: []string{"f3"}, Tenants: []string{"t1"}})
	if got := a["scope_tenants"].([]string); !slices.Equal(got, []string{"f1", "f2", "t1"}) || a["scope_all"] != false {
		t.Errorf("a slot's firms bind as %v (all %v), want f1, f2 and the firm that asked", got, a["scope_all"])
	}
	a = Args(events.Scope{All: true, Except: []string{"e1", "t1"}, Skip: []string{"p1"}, Tenants: []string{"t1"}})
	if got := a["scope_skip"].([]string); !slices.Equal(got, []string{"e1", "p1"}) || a["scope_all"] != true {
		t.Errorf("a slot for every firm but some skips %v, want e1 and p1 (t1 asked itself)", got)
	}
}

// What is tried: a statement with Filter's predicate and Expand's, then one with a
// hand-written look-alike (two different columns). What must hold: the form for every
// firm is the statement unchanged; the form for named firms keeps exactly the named
// firms (no @scope_all, no @scope_skip left); the look-alike is refused when the
// statement is prepared, not left to read every firm at run time.
func TestStatementReducesFilterForNamedFirms(t *testing.T) {
	sql := "SELECT 1 FROM tasks t WHERE " + Filter("t.tenant_id") + " AND " + Expand("covered(h.tenant_id)")
	q := NewStatement(sql)
	if got := q.For(events.ScopeAll()); got != sql {
		t.Errorf("For(every firm) = %q, want the statement unchanged", got)
	}
	named := q.For(events.ScopeFirms([]string{"a0000000-0000-4000-8000-000000000001"}))
	want := "SELECT 1 FROM tasks t WHERE (t.tenant_id = ANY(@scope_tenants::uuid[])) AND (h.tenant_id = ANY(@scope_tenants::uuid[]))"
	if named != want {
		t.Errorf("named form = %q, want %q", named, want)
	}

	byForm := NewStatementByForm(sql, "SELECT 2 FROM tasks t WHERE "+Filter("t.tenant_id"))
	if got := byForm.For(events.ScopeAll()); got != sql {
		t.Errorf("by form, For(every firm) = %q, want the first statement unchanged", got)
	}
	if got, want := byForm.For(events.ScopeFirms([]string{"a0000000-0000-4000-8000-000000000001"})), "SELECT 2 FROM tasks t WHERE (t.tenant_id = ANY(@scope_tenants::uuid[]))"; got != want {
		t.Errorf("by form, named form = %q, want the second statement reduced, %q", got, want)
	}

	lookAlike := "SELECT 1 WHERE (a.x = ANY(@scope_tenants::uuid[]) OR (@scope_all::bool AND NOT b.y = ANY(@scope_skip::uuid[])))"
	defer func() {
		if recover() == nil {
			t.Errorf("NewStatement(%q) did not panic: its named form would keep @scope_all", lookAlike)
		}
	}()
	NewStatement(lookAlike)
}
