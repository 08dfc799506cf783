// Package e2e holds the end-to-end tests: the whole system in one process, with every
// part real (embedded JetStream, PostgreSQL, the services, the nats CLI), driven the way
// people and operators drive it.
package e2e
