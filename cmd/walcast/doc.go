// Command walcast streams a Postgres database's committed changes to
// Socket.IO clients. See README.md for the runbook.
//
// Subcommands, one file each:
//
//	serve    serve.go, serve_wiring.go (cdc pipeline, rooms), serve_redis.go (cluster)
//	migrate  migrate.go: sql.Migrate for the configured mapping, publication, slot
//	check    check.go: cdc.Check, one line per finding with the SQL that fixes it
//	demo     demo.go, demo_sim.go, demo_clientjs.go, web/ (the embedded page)
//	version  version.go
//
// Configuration (config.go) comes from the environment (WALCAST_* and the
// seeds' own variables: DATABASE_URL, SUPABASE_URL, SUPABASE_JWT_SECRET,
// REDIS_URL, STOREFRONT_URL, ADMIN_URL) with flags to override; every problem
// is reported at once, one line each. main only installs the signal handling
// (the first SIGINT/SIGTERM starts a graceful shutdown, a second aborts) and
// calls run(ctx, args, getenv, stderr).
//
// Shutdown order in serve: stop accepting, stop the CDC intake (the reader
// sends its last standby status), drain the hub's queues until the deadline,
// close every connection so clients reconnect, stop the bus, close the pool.
package main
