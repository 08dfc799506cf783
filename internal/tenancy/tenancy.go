// Package tenancy is how a job's SQL selects the firms a run covers. A run's scope
// (events.Scope) is decided by its triggers and the firms' pauses; every statement of
// a job restricts its rows with Filter on its tenant column and binds Args, so one
// set-based statement serves one firm, a few, or all of them.
package tenancy

import (
	"maps"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/events"
)

// Filter is the predicate that keeps the rows of the covered firms, for col, a uuid
// column holding tenant ids (for example "t.tenant_id"). It uses the named arguments
// @scope_all, @scope_tenants and @scope_skip that Args binds.
func Filter(col string) string {
	return "(" + col + " = ANY(@scope_tenants::uuid[]) OR (@scope_all::bool AND NOT " + col + " = ANY(@scope_skip::uuid[])))"
}

// Args binds a scope for Filter. Lists are never nil: a NULL array would make the
// predicate NULL instead of false.
func Args(s events.Scope) pgx.NamedArgs {
	return pgx.NamedArgs{
		"scope_all":     s.All,
		"scope_tenants": nonNil(s.Tenants),
		"scope_skip":    nonNil(s.Skip),
	}
}

// With returns args with the scope's arguments added, leaving args unchanged.
func With(args pgx.NamedArgs, s events.Scope) pgx.NamedArgs {
	out := maps.Clone(args)
	if out == nil {
		out = pgx.NamedArgs{}
	}
	maps.Copy(out, Args(s))
	return out
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

var coveredCall = regexp.MustCompile(`\bcovered\(([a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)?)\)`)

// Expand replaces each covered(<column>) in a statement kept in a .sql file with
// Filter(<column>), so that SQL files say where the scope applies without repeating
// the predicate.
func Expand(sql string) string {
	return coveredCall.ReplaceAllStringFunc(sql, func(m string) string {
		return Filter(coveredCall.FindStringSubmatch(m)[1])
	})
}
