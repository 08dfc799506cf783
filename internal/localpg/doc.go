// Package localpg runs a private PostgreSQL server as a child of the current process, so
// that `make run` and the tests need nothing but the PostgreSQL binaries installed: no
// system service to configure, no shared server to clean up after.
//
// The server listens on 127.0.0.1 only, trusts every local connection (superuser
// "postgres", no password) and lives exactly from [Start] to [Server.Stop]. It is started
// as a direct child, in its own process group, rather than daemonised with pg_ctl: a
// Ctrl-C in the terminal reaches only our process, which then stops the server last,
// after the services that use it; and on Linux the kernel sends it a fast-shutdown
// signal if we die without calling Stop, so no server is left behind holding the port.
//
// A data directory that already holds a cluster is reused as it is, which is how
// `make run` keeps its data between runs; an empty one is initialised with initdb.
//
// PostgreSQL refuses to run as root. When we are root (containers, CI), initdb and
// postgres run as the "postgres" OS account, which must be able to reach the data
// directory: a checkout in root's home, mode 0700, is out of its reach. [Place]
// chooses between where a cluster belongs and a fallback that account can reach, and
// keeps choosing the same one; [MkdirTemp] makes a throwaway directory for tests.
package localpg
