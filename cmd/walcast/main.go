package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// errSilent makes main exit with status 1 without printing anything more: the
// subcommand already said what is wrong (walcast check).
var errSilent = errors.New("walcast: failed")

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "walcast: shutting down (signal again to abort)")
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "walcast: aborted")
		runAbortHooks()
		os.Exit(130)
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, errSilent):
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "walcast: %v\n", err)
		os.Exit(1)
	}
}

const usage = `walcast streams committed Postgres changes to Socket.IO clients.

Usage:
  walcast serve     run the service (CDC reader, hub, HTTP endpoints)
  walcast migrate   apply walcast's SQL, create the publication and the slot (idempotent)
  walcast rules     print the effective rules (WALCAST_RULES or the built-in file) as JSON
  walcast types     print a TypeScript declaration of the events for socket.io-client
  walcast check     check the database for what walcast needs; prints the SQL that fixes each problem
  walcast demo      run a throwaway Postgres, a simulated shop and a live web page
  walcast version   print the version

Run 'walcast <command> -h' for the flags; every flag also has an environment variable.
`

// abortHooks run when a second signal aborts the graceful shutdown: they
// undo what must not outlive the process (the demo's Postgres).
var (
	abortMu    sync.Mutex
	abortHooks = map[int]func(){}
	abortSeq   int
)

// onAbort registers fn to run on abort and returns a function that removes it.
func onAbort(fn func()) (remove func()) {
	abortMu.Lock()
	defer abortMu.Unlock()
	abortSeq++
	id := abortSeq
	abortHooks[id] = fn
	return func() {
		abortMu.Lock()
		defer abortMu.Unlock()
		delete(abortHooks, id)
	}
}

func runAbortHooks() {
	abortMu.Lock()
	hooks := make([]func(), 0, len(abortHooks))
	for _, fn := range abortHooks {
		hooks = append(hooks, fn)
	}
	abortMu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// run is main without the process: args exclude the program name, getenv
// reads the environment, and every message goes to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stderr)
	case "rules":
		return runRules(args[1:], getenv, os.Stdout, stderr)
	case "types":
		return runTypes(ctx, rest, getenv, os.Stdout, stderr)
	case "check":
		return runCheck(ctx, rest, getenv, stderr)
	case "demo":
		return runDemo(ctx, rest, getenv, stderr)
	case "version", "-version", "--version":
		return runVersion(stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
