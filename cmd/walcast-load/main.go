package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "walcast-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: walcast-load run|bench|worker [flags]")
	}
	switch args[0] {
	case "worker":
		return workerMain(ctx)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], getenv, stdout, stderr)
	default:
		return fmt.Errorf("unknown subcommand %q (want run, bench or worker)", args[0])
	}
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c RunConfig
	fs.StringVar(&c.Server, "server", "127.0.0.1:3001", "Socket.IO server host:port (IPv4)")
	fs.StringVar(&c.Path, "path", "/socket.io/", "Socket.IO path")
	fs.StringVar(&c.DSN, "db", os.Getenv("WALCAST_DATABASE_URL"), "database URL (the server's)")
	fs.StringVar(&c.Secret, "secret", os.Getenv("WALCAST_JWT_SECRET"), "HS256 secret")
	fs.IntVar(&c.ServerPID, "pid", 0, "server pid for CPU/RSS (0 = not measured)")
	fs.IntVar(&c.Clients, "clients", 100, "reading clients")
	fs.IntVar(&c.Slow, "slow", 0, "extra clients that never read")
	fs.IntVar(&c.Rooms, "rooms", 1, "bench product rooms (clients round-robin)")
	fs.IntVar(&c.Users, "users", 0, "distinct user ids in the tokens: 0 = one per connection, N = clients share N ids (the server's per-user cap applies)")
	fs.Float64Var(&c.Rate, "rate", 10, "changes per second")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "drive duration")
	fs.BoolVar(&c.Storm, "storm", false, "drive as fast as possible")
	fs.IntVar(&c.DriverConns, "driver-conns", 0, "database connections driving changes")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes (0 = auto)")
	fs.StringVar(&c.ToolCPUs, "tool-cpus", "", "taskset CPU list for workers")
	fs.StringVar(&c.SlotName, "slot", "", "replication slot to sample lag of")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Log = stderr
	r, err := Run(ctx, c)
	if err != nil {
		return err
	}
	if *jsonOut {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	printResult(stdout, "run", r)
	return nil
}

func printResult(w io.Writer, name string, r *Result) {
	fmt.Fprintf(w, "%s: clients %d (+%d slow) connected %d failed %d in %s\n", name, r.Clients, r.Slow, r.Connected, r.ConnectFailed, r.ConnectTime.Round(time.Millisecond))
	for _, e := range r.ConnectErrors {
		fmt.Fprintf(w, "  connect error: %s\n", e)
	}
	fmt.Fprintf(w, "  changes %d (%.1f/s) expected %d received %d lost %d dups %d stale %d unmatched %d closed %d slow-closed %d\n",
		r.Changes, r.Rate, r.Expected, r.Received, r.Lost, r.Dups, r.Stale, r.Unmatched, r.Closed, r.SlowClosed)
	fmt.Fprintf(w, "  latency p50 %s p90 %s p99 %s max %s mean %s; %.0f deliveries/s\n",
		fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max), fmtDur(r.Mean), r.DeliveriesPerSec)
	fmt.Fprintf(w, "  server RSS %s -> %s (%.2f KiB/conn), cpu %s (%.2f µs/delivery); tool cpu %s (%.2f µs/delivery), driver cpu %s; load %s\n",
		fmtBytes(r.ServerRSSBefore), fmtBytes(r.ServerRSSIdle), r.RSSPerConn/1024, r.ServerCPU.Round(time.Millisecond),
		us(r.CPUPerDelivery), r.ToolCPU.Round(time.Millisecond), us(r.ToolCPUPerDelivery), r.DriverCPU.Round(time.Millisecond), r.LoadAvg)
	if len(r.CloseReasons) > 0 {
		fmt.Fprintf(w, "  connections lost: %v, first %s after all connected\n", r.CloseReasons, r.FirstClose.Sub(r.ConnectedAt).Round(time.Millisecond))
	}
	if r.StormTPS > 0 {
		fmt.Fprintf(w, "  pgbench %.0f tx/s during the run\n", r.StormTPS)
	}
	if r.WalsenderCPU > 0 {
		fmt.Fprintf(w, "  walsender cpu %s\n", r.WalsenderCPU.Round(time.Millisecond))
	}
	if r.SlotLagMax > 0 {
		fmt.Fprintf(w, "  slot lag max %s p99 %s first-quarter avg %s last-quarter avg %s\n",
			fmtBytes(r.SlotLagMax), fmtBytes(r.SlotLagP99), fmtBytes(int64(r.SlotLagFirst)), fmtBytes(int64(r.SlotLagLast)))
	}
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	default:
		return fmt.Sprintf("%dB", b)
	}
}
