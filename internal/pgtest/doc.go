// Package pgtest gives tests a real, migrated PostgreSQL database of their own, so
// that queries are tested against the server they will run on rather than a mock.
//
// A test binary (one package) shares one server: a private one that [Main] stops at
// the end, started on first use in a temporary directory with durability turned off
// for speed, or the server named by TEST_DATABASE_URL when that is set (CI with a
// PostgreSQL service, say). The migrations run once per binary, into a template
// database; each [NewDB] is then a copy of the template, made in a fraction of a second,
// and is dropped when its test ends. Tests therefore start from the migrated schema
// with no rows, may run in parallel, and see nothing of one another.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestOverdue(t *testing.T) {
//		t.Parallel()
//		pool, _ := pgtest.NewPool(t)
//		...
//	}
package pgtest
