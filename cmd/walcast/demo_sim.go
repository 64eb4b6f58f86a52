package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/walcast/walcast/internal/logkey"
)

// shopSim is the demo's simulated shop. It only writes SQL, like any other
// service of a real shop would; walcast sees its commits through the slot.
type shopSim struct {
	db    *pgxpool.Pool
	log   *slog.Logger
	rnd   *rand.Rand
	every time.Duration
	seq   int
}

func newShopSim(db *pgxpool.Pool, log *slog.Logger) *shopSim {
	return &shopSim{db: db, log: log.With(logkey.Component, "demo-sim"), rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		every: 2 * time.Second, seq: int(time.Now().Unix() % 10000 * 10)}
}

var simCustomers = []string{"00000000-0000-4000-8000-000000000101", "00000000-0000-4000-8000-000000000102"}

// nextStatus is how an order moves on.
var nextStatus = map[string]string{"pending": "paid", "paid": "processing", "processing": "shipped", "shipped": "delivered"}

// run acts every few seconds until ctx ends: a new order (which takes stock),
// an order moving on, stock falling, or a restock of what runs low.
func (s *shopSim) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		switch p := s.rnd.IntN(100); {
		case p < 30:
			err = s.newOrder(ctx)
		case p < 60:
			err = s.advanceOrder(ctx)
		case p < 85:
			err = s.sell(ctx)
		default:
			err = s.restock(ctx)
		}
		if err != nil && ctx.Err() == nil {
			fails++
			if fails == 1 || fails%30 == 0 {
				s.log.Warn("simulated shop step failed", logkey.Err, err, "failures", fails)
			}
		}
	}
}

func (s *shopSim) newOrder(ctx context.Context) error {
	s.seq++
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var variant, seller string
	var price float64
	err = tx.QueryRow(ctx, `SELECT v.id::text, coalesce(p.seller_id::text, ''), v.price::float8
		FROM variants v JOIN products p ON p.id = v.product_id JOIN inventory i ON i.variant_id = v.id
		WHERE i.quantity - i.reserved > 0 ORDER BY random() LIMIT 1`).Scan(&variant, &seller, &price)
	if err == pgx.ErrNoRows {
		return s.restock(ctx)
	}
	if err != nil {
		return fmt.Errorf("pick variant: %w", err)
	}
	qty := 1 + s.rnd.IntN(3)
	if _, err := tx.Exec(ctx, `UPDATE inventory SET quantity = greatest(quantity - $2, reserved), updated_at = now() WHERE variant_id = $1`, variant, qty); err != nil {
		return fmt.Errorf("take stock: %w", err)
	}
	var sellerArg any
	if seller != "" {
		sellerArg = seller
	}
	_, err = tx.Exec(ctx, `INSERT INTO orders (order_number, user_id, seller_id, total, shipping_address)
		VALUES ($1, $2, $3, $4, 'demo street 1')`,
		fmt.Sprintf("ORD-%d", 100000+s.seq), simCustomers[s.rnd.IntN(len(simCustomers))], sellerArg, price*float64(qty))
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	return tx.Commit(ctx)
}

func (s *shopSim) advanceOrder(ctx context.Context) error {
	var id, status string
	err := s.db.QueryRow(ctx, `SELECT id::text, status::text FROM orders
		WHERE status IN ('pending', 'paid', 'processing', 'shipped') ORDER BY random() LIMIT 1`).Scan(&id, &status)
	if err == pgx.ErrNoRows {
		return s.newOrder(ctx)
	}
	if err != nil {
		return fmt.Errorf("pick order: %w", err)
	}
	next := nextStatus[status]
	if status == "pending" && s.rnd.IntN(10) == 0 {
		next = "cancelled"
	}
	var tracking any
	if next == "shipped" {
		tracking = fmt.Sprintf("1Z%06dDEMO", s.rnd.IntN(1000000))
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var user, number string
	err = tx.QueryRow(ctx, `UPDATE orders SET status = $2::order_status, tracking_number = coalesce($3, tracking_number), updated_at = now()
		WHERE id = $1 RETURNING user_id::text, order_number`, id, next, tracking).Scan(&user, &number)
	if err != nil {
		return fmt.Errorf("advance order: %w", err)
	}
	if next == "shipped" {
		// The SQL API in the same transaction: delivered only if the update commits.
		if _, err := tx.Exec(ctx, `SELECT walcast.notify($1::uuid, 'Order shipped', $2, 'info')`, user, number+" is on its way"); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	return tx.Commit(ctx)
}

func (s *shopSim) sell(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `UPDATE inventory SET quantity = greatest(quantity - $1, reserved), updated_at = now()
		WHERE variant_id = (SELECT variant_id FROM inventory WHERE quantity > reserved ORDER BY random() LIMIT 1)`, 1+s.rnd.IntN(4))
	if err != nil {
		return fmt.Errorf("sell: %w", err)
	}
	return nil
}

func (s *shopSim) restock(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `UPDATE inventory SET quantity = quantity + $1, updated_at = now()
		WHERE variant_id = (SELECT variant_id FROM inventory ORDER BY (quantity - reserved) - low_stock_threshold, random() LIMIT 1)`, 20+s.rnd.IntN(30))
	if err != nil {
		return fmt.Errorf("restock: %w", err)
	}
	return nil
}
