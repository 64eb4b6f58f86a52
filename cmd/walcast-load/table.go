package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable prints the suite's results as one markdown table, walcast beside
// Node from the same run, with the ratio and whether the row's target is met.
func printTable(w io.Writer, cfg BenchConfig, o *BenchOutcome) {
	get := func(sc, srv string) *Result {
		if m := o.Results[sc]; m != nil {
			return m[srv]
		}
		return nil
	}
	mode := "full"
	if cfg.Quick {
		mode = "quick (BENCH_QUICK=1: small numbers, not comparable with the targets)"
	}
	fmt.Fprintf(w, "\nwalcast vs Node socket.io 4.8 — %s\nmachine: %s; servers pinned to CPU %q, load tool to CPU %q; walcast at commit %s\n\n",
		mode, o.Machine, cfg.ServerCPUs, cfg.ToolCPUs, o.Commit)
	fmt.Fprintln(w, "| scenario | measure | target | walcast | Node | Node/walcast | met | load avg |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	row := func(sc, measure, target string, f func(*Result) string, ratio func(wc, n *Result) string, met func(*Result, *Result) string) {
		wc, n := get(sc, "walcast"), get(sc, "node")
		if wc == nil && n == nil && len(o.Errors[sc]) == 0 {
			return // not run
		}
		cell := func(r *Result, srv string) string {
			if r == nil {
				if err := o.Errors[sc][srv]; err != nil {
					return "error: " + oneLine(err.Error(), 60)
				}
				return "–"
			}
			return f(r)
		}
		ra, m := "–", "–"
		if wc != nil && n != nil && ratio != nil {
			ra = ratio(wc, n)
		}
		if wc != nil && met != nil {
			m = met(wc, n)
		}
		la := "–"
		if wc != nil {
			la = wc.LoadAvg
		}
		if n != nil {
			la += " / " + n.LoadAvg
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, measure, target, cell(wc, "walcast"), cell(n, "node"), ra, m, la)
	}
	kib := func(r *Result) string { return fmt.Sprintf("%.2f KiB (%d conns)", r.RSSPerConn/1024, r.Connected) }
	row("idle", "server RSS per connection", "≤ 8 KiB", kib,
		func(wc, n *Result) string { return fmt.Sprintf("%.1f×", n.RSSPerConn/wc.RSSPerConn) },
		func(wc, _ *Result) string { return yes(wc.ConnectFailed == 0 && wc.RSSPerConn <= 8*1024) })
	row("idle-1user", "server RSS per connection, every connection one user id", "(per-user state = idle − this)", kib,
		func(wc, n *Result) string { return fmt.Sprintf("%.1f×", n.RSSPerConn/wc.RSSPerConn) }, nil)
	cpu := func(r *Result) string {
		return fmt.Sprintf("%.2f µs (tool %.2f µs; %.0f deliv/s; lost %d)", us(r.CPUPerDelivery), us(r.ToolCPUPerDelivery), r.DeliveriesPerSec, r.Lost)
	}
	row("fanout-cost", "server CPU per delivery", "≤ 3.5 µs", cpu,
		func(wc, n *Result) string {
			return fmt.Sprintf("%.1f×", float64(n.CPUPerDelivery)/float64(wc.CPUPerDelivery))
		},
		func(wc, _ *Result) string { return yes(wc.Lost == 0 && us(wc.CPUPerDelivery) <= 3.5) })
	row("unsaturated", "server CPU per delivery at 50,000 deliveries/s", "≤ 12 µs", cpu,
		func(wc, n *Result) string {
			return fmt.Sprintf("%.1f×", float64(n.CPUPerDelivery)/float64(wc.CPUPerDelivery))
		},
		func(wc, _ *Result) string { return yes(wc.Lost == 0 && us(wc.CPUPerDelivery) <= 12) })
	lat := func(r *Result) string {
		return fmt.Sprintf("lost %d; p50 %s p99 %s max %s", r.Lost, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
	}
	p99ratio := func(wc, n *Result) string {
		return fmt.Sprintf("p99 %.1f×", float64(n.P99)/float64(max(wc.P99, time.Microsecond)))
	}
	row("fanout-latency", "lost; p99 commit→receive", "0 lost; p99 ≤ 50 ms", lat, p99ratio,
		func(wc, _ *Result) string { return yes(wc.Lost == 0 && wc.P99 <= 50*time.Millisecond) })
	row("spread", "lost; p50 / p99", "0 lost; p50 ≤ 1 ms, p99 ≤ 5 ms, ≤ Node", lat, p99ratio,
		func(wc, n *Result) string {
			ok := wc.Lost == 0 && wc.P50 <= time.Millisecond && wc.P99 <= 5*time.Millisecond
			if n != nil {
				ok = ok && wc.P99 <= n.P99
			}
			return yes(ok)
		})
	slow := func(r *Result) string {
		return fmt.Sprintf("others lost %d, p99 %s; slow closed %d/%d", r.Lost, fmtDur(r.P99), r.SlowClosed, r.Slow)
	}
	row("slow", "others' p99; slow ones disconnected", "p99 ≈ fanout-latency's; slow counted", slow, p99ratio,
		func(wc, _ *Result) string {
			base := get("fanout-latency", "walcast")
			if base == nil {
				return "?"
			}
			return yes(wc.Lost == 0 && wc.P99 <= 2*base.P99+5*time.Millisecond)
		})
	storm := func(r *Result) string {
		s := fmt.Sprintf("pgbench %.0f tx/s; probe lost %d, p50 %s p99 %s max %s", r.StormTPS, r.Lost, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
		if r.SlotLagMax > 0 {
			s += fmt.Sprintf("; slot lag p99 %s, avg %s→%s", fmtBytes(r.SlotLagP99), fmtBytes(int64(r.SlotLagFirst)), fmtBytes(int64(r.SlotLagLast)))
		}
		return s
	}
	row("storm", "probe commit→receive under the max write rate; slot lag", "p99 < 100 ms, no growth", storm, p99ratio,
		func(wc, _ *Result) string {
			return yes(wc.Lost == 0 && wc.P99 < 100*time.Millisecond && (wc.SlotLagLast <= 2*wc.SlotLagFirst+1<<20))
		})
	if b := o.Backlog["walcast"]; b != nil {
		fmt.Fprintf(w, "| backlog | %d row changes while stopped: time to drain; peak RSS | < 30 s; bounded | %s; %s | n/a (NOTIFY drops them) | – | %s | %s |\n",
			b.Rows, b.Drain.Round(time.Millisecond), fmtBytes(b.PeakRSS), yes(b.Received && b.Drain < 30*time.Second), b.LoadAvg)
	} else if err := o.Errors["backlog"]["walcast"]; err != nil {
		fmt.Fprintf(w, "| backlog | time to drain; peak RSS | < 30 s | error: %s | n/a | – | no | – |\n", oneLine(err.Error(), 80))
	}
	if b := o.OneRowTx; b != nil {
		met := b.Received && b.TxPerSec() >= 100_000 && b.TxPerSec() >= 0.6*b.PGTxPerSec() && b.CPUPerTx() <= 5
		fmt.Fprintf(w, "| tx1 | %d one-row transactions committed while stopped: drain rate; CPU per tx; Postgres's own decode rate | ≥ 100,000 tx/s, ≥ 0.6 × Postgres, ≤ 5 µs/tx | %.0f tx/s (%s); %.2f µs/tx | Postgres: %.0f tx/s (%s); pg_recvlogical: %.0f tx/s (%s) | %.2f× of Postgres, %.2f× of pg_recvlogical | %s | %s |\n",
			b.Rows, b.TxPerSec(), b.Drain.Round(time.Millisecond), b.CPUPerTx(), b.PGTxPerSec(), b.PGDecode.Round(time.Millisecond),
			b.PGRecvTxPerSec(), b.PGRecv.Round(time.Millisecond), b.TxPerSec()/max(b.PGTxPerSec(), 1), b.TxPerSec()/max(b.PGRecvTxPerSec(), 1), yes(met), b.LoadAvg)
	} else if err := o.Errors["tx1"]["walcast"]; err != nil {
		fmt.Fprintf(w, "| tx1 | one-row transactions drained | ≥ 100,000 tx/s | error: %s | – | – | no | – |\n", oneLine(err.Error(), 80))
	}
	fmt.Fprintln(w)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
