// Package db owns the PostgreSQL schema and the connection pool every service uses.
//
// Migrations are numbered SQL files embedded in the binaries and applied at start by
// goose under a PostgreSQL advisory lock, so any number of replicas may start at once:
// one applies, the others wait and then find nothing to do.
package db
