// Package tenancy is how a job's SQL selects the firms a run covers. A run's scope
// (events.Scope) is decided by its triggers and the firms' pauses; every statement of
// a job restricts its rows with Filter on its tenant column and binds Args, so one
// set-based statement serves one firm, a few, or all of them.
package tenancy

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lexhq/gstjobs/internal/events"
)

// Filter is the predicate that keeps the rows of the covered firms, for col, a uuid
// column holding tenant ids (for example "t.tenant_id"). It uses the named arguments
// @scope_all, @scope_tenants and @scope_skip that Args binds.
func Filter(col string) string {
	return "(" + col + " = ANY(@scope_tenants::uuid[]) OR (@scope_all::bool AND NOT " + col + " = ANY(@scope_skip::uuid[])))"
}

// Args binds a scope for Filter. The scope's named firms (those that asked, and those
// a schedule slot is for and that did not pause the job) are bound as @scope_tenants,
// and, for a scope of every firm, the firms it is not for (paused, or whose slot is
// elsewhere) as @scope_skip; the predicate therefore keeps one shape, and a run for a
// few firms is one list the planner can look up by index. Lists are never nil: a NULL
// array would make the predicate NULL instead of false.
func Args(s events.Scope) pgx.NamedArgs {
	named := Named(s)
	var skip []string
	if s.All {
		for _, list := range [][]string{s.Except, s.Skip} {
			for _, t := range list {
				if !s.Covers(t) {
					skip = append(skip, t)
				}
			}
		}
		slices.Sort(skip)
		skip = slices.Compact(skip)
	}
	return pgx.NamedArgs{
		"scope_all":     s.All,
		"scope_tenants": nonNil(named),
		"scope_skip":    nonNil(skip),
	}
}

// Named is the firms a scope names and covers (@scope_tenants): those that asked, and
// those a schedule slot is for and that did not pause the job, sorted, each once.
func Named(s events.Scope) []string {
	named := slices.Clone(s.Tenants)
	for _, t := range s.Firms {
		if s.Covers(t) {
			named = append(named, t)
		}
	}
	slices.Sort(named)
	return slices.Compact(named)
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

// Statement is a job's statement in the two forms its runs execute: for a run of every
// firm, with each Filter as written; for a run of named firms (a schedule slot's, a
// firm's Run Now), with each Filter reduced to its first half, col = ANY(@scope_tenants),
// which is what the whole predicate amounts to when @scope_all is false. The reduced
// form's generic plan reads the named firms' rows by index whatever the firms, so a run
// for named firms can keep one plan per connection (ReusePlansForNamed) instead of
// planning the statement at every run; the full form's generic plan cannot know that
// @scope_all is false, and reads every firm's rows.
type Statement struct {
	all, named string
}

// filterCall matches the predicates Filter writes, built from Filter itself so that the
// two cannot drift apart; Go's regexp has no back-references, so NewStatement checks
// that both columns are one.
var filterCall = func() *regexp.Regexp {
	const col = "COLUMN"
	parts := strings.Split(Filter(col), col)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, `([a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)?)`))
}()

// NewStatement prepares sql, whose scope predicates are Filter's (written by Filter or
// by Expand), in both forms. It panics, at start-up where statements are prepared, when
// the named form still reads @scope_all or @scope_skip: a predicate that is not
// Filter's would keep the named form's generic plan reading every firm's rows.
func NewStatement(sql string) Statement {
	named := filterCall.ReplaceAllStringFunc(sql, func(m string) string {
		sub := filterCall.FindStringSubmatch(m)
		if sub[1] != sub[2] {
			return m // not Filter's: caught below
		}
		return "(" + sub[1] + " = ANY(@scope_tenants::uuid[]))"
	})
	if strings.Contains(named, "@scope_all") || strings.Contains(named, "@scope_skip") {
		panic("tenancy: a statement's scope predicate is not Filter's, so its form for named firms cannot be derived:\n" + sql)
	}
	return Statement{all: sql, named: named}
}

// NewStatementByForm is NewStatement for a statement whose best shape is not the same
// for every firm as for a few: forAll is the form for every firm as it is, forNamed is
// reduced as NewStatement reduces it.
func NewStatementByForm(forAll, forNamed string) Statement {
	return Statement{all: NewStatement(forAll).all, named: NewStatement(forNamed).named}
}

// For is the statement as a run of scope s executes it.
func (q Statement) For(s events.Scope) string {
	if s.All {
		return q.all
	}
	return q.named
}

// ReusePlansForNamed prepares the transaction of a run for named firms (the firms of
// one schedule slot, a firm's Run Now) to plan its statements once per connection (a
// generic plan) instead of at every run, for statements that read the named firms' rows
// through the same indexes whatever the firms (the hearing reminders', which read the
// next 24 hours by date: fifty runs a day for a job whose firms keep fifty different
// hours cost 1.2 times one run for every firm with it, 1.4 times without), and for a
// Statement's form for named firms, which reads them by index. A run for every firm is
// left to PostgreSQL's choice, except for the statements that pass EachRun.
func ReusePlansForNamed(ctx context.Context, tx pgx.Tx, s events.Scope) error {
	return setPlanCacheMode(ctx, tx, s, reusePlans)
}

// QueueInOneTransaction queues on b, for a run of scope s, one transaction of the
// statement sql with args (its one row scanned by scan): BEGIN, ReusePlansForNamed's
// setting for named firms, the statement, COMMIT, sent at once: one round trip
// instead of three or four. (pgx sends a batch as one implicit transaction already;
// BEGIN and COMMIT say so rather than rely on it.) A statement that fails leaves the
// connection in a failed transaction, which the pool closes on release.
func QueueInOneTransaction(b *pgx.Batch, s events.Scope, sql string, args pgx.NamedArgs, scan func(pgx.Row) error) {
	QueueBegin(b, s)
	b.Queue(sql, args).QueryRow(scan)
	b.Queue("COMMIT")
}

// QueueBegin queues on b the start of a transaction of a run of scope s: BEGIN and, for
// named firms, ReusePlansForNamed's setting. The caller queues its statements and
// COMMIT after it, and sends them all at once.
func QueueBegin(b *pgx.Batch, s events.Scope) {
	b.Queue("BEGIN")
	if !s.All {
		b.Queue(planCacheModeSQL(reusePlans))
	}
}

// EachRun, passed before a statement's arguments (tx.QueryRow(ctx, sql, tenancy.EachRun,
// args)), has the statement planned for the run's own arguments every time it runs:
// pgx sends it as an unnamed statement (QueryExecModeCacheDescribe: its description is
// cached, its plan is not), and PostgreSQL plans an unnamed statement afresh at each
// execution unless plan_cache_mode forces a generic plan (ReusePlansForNamed's runs
// for named firms). It is for the statements whose plan must fit the firms of the run:
//
//   - The generic plan of a statement run again and again on one connection, which
//     PostgreSQL picks from the statement's sixth run when it costs less on paper than
//     the custom plans so far, is made for no firms in particular. For named firms it
//     may read every firm's rows to keep twenty (the analytics snapshot's did, 170 ms a
//     run instead of 30 on 1M tasks, before it had a Statement's form for named firms).
//     For every firm it is costed for the few rows that conditions on unknown values let
//     through (the reminders' slice of the firms, @parts = 1 OR ..., made it five firms
//     of 1,000), nested loops throughout: the deadline alerts for every firm, run after
//     the groups of twenty firms of their own hours on the same connection, took 90 s
//     that way instead of 3.6 s on 1M tasks.
//   - Not plan_cache_mode = force_custom_plan in the run's transaction, which the
//     jobs set before: it applies to every cached plan of the session, the foreign-key
//     checks' among them, so each row the run inserted had its keys' checks planned
//     again (an analytics run for every firm on 10k tasks: 57 ms of foreign-key checks
//     for its 7,000 rows instead of 22, its run 100 ms instead of 65).
//
// Planning a run for every firm costs a few milliseconds (30 ms for the deadline alerts).
const EachRun = pgx.QueryExecModeCacheDescribe

// QueryArgs is a statement's arguments as a query method takes them: args, after
// EachRun when eachRun.
func QueryArgs(eachRun bool, args pgx.NamedArgs) []any {
	if eachRun {
		return []any{EachRun, args}
	}
	return []any{args}
}

// reusePlans is ReusePlansForNamed's plan_cache_mode.
const reusePlans = "force_generic_plan"

// planCacheModeSQL sets plan_cache_mode for the rest of the transaction.
func planCacheModeSQL(mode string) string { return "SET LOCAL plan_cache_mode = " + mode }

func setPlanCacheMode(ctx context.Context, tx pgx.Tx, s events.Scope, mode string) error {
	if s.All {
		return nil
	}
	if _, err := tx.Exec(ctx, planCacheModeSQL(mode)); err != nil {
		return fmt.Errorf("tenancy: plans of a run for named firms: %w", err)
	}
	return nil
}
