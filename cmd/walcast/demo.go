package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/pgserver"
	wsql "github.com/walcast/walcast/sql"
)

//go:embed web
var webFS embed.FS

// The demo users, from sql/020_demo_seed.sql.
var demoUsers = map[string]demoUser{
	"customer": {ID: "00000000-0000-4000-8000-000000000101", Name: "Alice Customer", Email: "alice@example.com", Role: "customer"},
	"seller":   {ID: "00000000-0000-4000-8000-000000000011", Name: "Sella One", Email: "seller1@example.com", Role: "seller"},
	"admin":    {ID: "00000000-0000-4000-8000-000000000001", Name: "Ada Admin", Email: "admin@example.com", Role: "admin"},
}

type demoUser struct {
	ID, Name, Email, Role string
}

const demoDB = "shop"

func runDemo(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fset := newFlagSet("demo", stderr)
	listen := fset.String("listen", "127.0.0.1:3001", "address of the demo page and the Socket.IO endpoint (port 0 picks a free one)")
	keepDB := fset.Bool("keep-db", false, "leave the demo Postgres running (and its files) when the demo stops")
	noSim := fset.Bool("no-sim", false, "do not run the simulated shop (only your SQL changes anything)")
	c, err := parseConfig(fset, optLog, args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another walcast demo running? try -listen 127.0.0.1:0)", *listen, err)
	}
	defer ln.Close()
	clientJS, from, err := loadClientJS(ctx, nil)
	if err != nil {
		return fmt.Errorf("socket.io-client bundle: %w (run `npm ci` in testdata/, or allow access to registry.npmjs.org once)", err)
	}
	log.Debug("socket.io-client bundle", "from", from)

	fmt.Fprintln(stderr, "walcast demo: starting a throwaway Postgres…")
	pg, err := pgserver.Start(ctx, pgserver.Options{TCPPort: -1, Settings: []string{"max_slot_wal_keep_size = 1GB"}})
	if errors.Is(err, pgserver.ErrNoServer) {
		return fmt.Errorf("%w\n(on Debian/Ubuntu: sudo apt-get install postgresql)", err)
	}
	if err != nil {
		return err
	}
	if !*keepDB {
		defer onAbort(func() { pg.Stop() })()
	}
	defer func() {
		if *keepDB {
			fmt.Fprintf(stderr, "walcast demo: Postgres left running: psql %q\n  stop it with: pg_ctl -D %s stop && rm -rf %s\n", pg.URL(demoDB), pg.DataDir, pg.Dir)
			return
		}
		if err := pg.Stop(); err != nil {
			log.Warn("stop demo Postgres", logkey.Err, err)
		}
	}()
	if err := pg.CreateDatabase(ctx, demoDB); err != nil {
		return err
	}
	dbURL := pg.URL(demoDB)
	if err := migrateDemo(ctx, dbURL); err != nil {
		return err
	}

	secretBytes := make([]byte, 32)
	rand.Read(secretBytes)
	cfg := config{
		DatabaseURL:     secret(dbURL),
		Listen:          ln.Addr().String(),
		JWTSecret:       secret(base64.RawURLEncoding.EncodeToString(secretBytes)),
		AdminRoles:      []string{"admin", "super_admin"},
		Slot:            "walcast",
		Publication:     "walcast",
		LogLevel:        c.LogLevel,
		LogFormat:       c.LogFormat,
		ShutdownTimeout: 5 * time.Second,
		DBPoolSize:      8,
		RecoveryWindow:  2 * time.Minute,
	}
	svc, err := newService(cfg, log)
	if err != nil {
		return err
	}
	d := &demo{db: svc.db, secret: []byte(cfg.JWTSecret), clientJS: clientJS, dbURL: dbURL}
	if err := d.routes(svc.mux); err != nil {
		return err
	}

	var wg sync.WaitGroup
	simCtx, stopSim := context.WithCancel(ctx)
	defer func() { stopSim(); wg.Wait() }()
	if !*noSim {
		wg.Go(func() { newShopSim(svc.db, log).run(simCtx) })
	}

	pageURL := "http://" + hostForURL(ln.Addr().String()) + "/"
	fmt.Fprintf(stderr, `
walcast demo is running
  page:      %s
  database:  %s
  simulated shop: %s

Open the page, then change the database from another terminal and watch it arrive:

  psql '%s'

%s
Ctrl-C stops the demo and removes the database%s.

`, pageURL, dbURL, map[bool]string{true: "off (-no-sim)", false: "on (orders arrive, statuses move, stock falls and is restocked)"}[*noSim],
		dbURL, indent(trySQL, "  "), map[bool]string{true: " (kept: -keep-db)", false: ""}[*keepDB])

	return svc.Run(ctx, ln)
}

// hostForURL turns a listen address into one a browser can open.
func hostForURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// trySQL is what the page and the banner suggest typing into psql.
const trySQL = `-- stock falls: the storefront's stock number changes (and a low-stock alert when it crosses the threshold)
UPDATE inventory SET quantity = quantity - 3 WHERE variant_id = '20000000-0000-4000-8000-000000000003';
-- a new order: a toast on the admin dashboard, a line in the seller feed, new metrics
INSERT INTO orders (order_number, user_id, seller_id, total)
  VALUES ('ORD-' || (1000 + floor(random() * 90000))::int, '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 42.00);
-- an order moves on: the customer's tracking view changes
UPDATE orders SET status = 'shipped', tracking_number = '1Z-DEMO-42' WHERE order_number = 'ORD-1001';
-- any event from SQL, delivered only if the transaction commits
SELECT walcast.notify('00000000-0000-4000-8000-000000000101', 'Hello', 'sent from psql', 'info');
`

func migrateDemo(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to the demo database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := wsql.Migrate(ctx, conn, wsql.Options{Demo: true, Slot: "walcast"}); err != nil {
		return fmt.Errorf("migrate the demo database: %w", err)
	}
	return nil
}

// demo serves the page, its assets, the demo tokens and the initial state.
type demo struct {
	db       *pgxpool.Pool
	secret   []byte
	clientJS []byte
	dbURL    string
}

func (d *demo) routes(mux *http.ServeMux) error {
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return err
	}
	static := http.FileServerFS(web)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, web, "index.html")
	})
	mux.Handle("GET /demo/app.js", http.StripPrefix("/demo", static))
	mux.Handle("GET /demo/style.css", http.StripPrefix("/demo", static))
	mux.HandleFunc("GET /demo/socket.io.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(d.clientJS)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /demo/tokens", d.tokens)
	mux.HandleFunc("GET /demo/state", d.state)
	return nil
}

// token signs an HS256 token for a demo user, shaped like a Supabase access token.
func (d *demo) token(u demoUser) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":          u.ID,
		"email":        u.Email,
		"role":         "authenticated",
		"aud":          "authenticated",
		"iat":          now.Unix(),
		"exp":          now.Add(12 * time.Hour).Unix(),
		"app_metadata": map[string]any{"role": u.Role},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(d.secret)
}

// tokens is the demo-only token endpoint: a fresh token for each demo user.
func (d *demo) tokens(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for who, u := range demoUsers {
		t, err := d.token(u)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out[who] = t
	}
	writeJSON(w, out)
}

type demoVariant struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Available int    `json:"available"`
}

type demoProduct struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Variants []demoVariant `json:"variants"`
}

type demoOrder struct {
	ID             string  `json:"id"`
	OrderNumber    string  `json:"order_number"`
	Status         string  `json:"status"`
	TrackingNumber string  `json:"tracking_number"`
	Total          float64 `json:"total"`
}

// state is the page's initial render: users with tokens, products with
// stock, the customer's orders, current metrics.
func (d *demo) state(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	users := map[string]any{}
	for who, u := range demoUsers {
		t, err := d.token(u)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		users[who] = map[string]string{"id": u.ID, "name": u.Name, "role": u.Role, "token": t}
	}
	products, err := d.products(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	orders, err := d.orders(ctx, demoUsers["customer"].ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var rev, aov float64
	var n int
	err = d.db.QueryRow(ctx, demoMetricsSQL).Scan(&rev, &n, &aov)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := map[string]any{
		"customer": users["customer"], "seller": users["seller"], "admin": users["admin"],
		"products": products, "orders": orders,
		"metrics": map[string]any{"totalRevenue": rev, "totalOrders": n, "averageOrderValue": aov},
		"trySQL":  "psql '" + d.dbURL + "'\n\n" + trySQL,
	}
	writeJSON(w, out)
}

// demoMetricsSQL matches the mapper's running metrics: every order that is not
// cancelled or refunded.
const demoMetricsSQL = `SELECT coalesce(sum(total), 0)::float8, count(*)::int, coalesce(avg(total), 0)::float8
	FROM orders WHERE status NOT IN ('cancelled', 'refunded')`

func (d *demo) products(ctx context.Context) ([]demoProduct, error) {
	rows, err := d.db.Query(ctx, `SELECT p.id::text, p.name, v.id::text, v.name, coalesce(i.quantity - i.reserved, 0)
		FROM products p JOIN variants v ON v.product_id = p.id LEFT JOIN inventory i ON i.variant_id = v.id
		ORDER BY p.created_at, p.name, v.sku`)
	if err != nil {
		return nil, fmt.Errorf("demo products: %w", err)
	}
	defer rows.Close()
	var out []demoProduct
	for rows.Next() {
		var pid, pname string
		var v demoVariant
		if err := rows.Scan(&pid, &pname, &v.ID, &v.Name, &v.Available); err != nil {
			return nil, fmt.Errorf("demo products: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].ID != pid {
			out = append(out, demoProduct{ID: pid, Name: pname})
		}
		out[len(out)-1].Variants = append(out[len(out)-1].Variants, v)
	}
	return out, rows.Err()
}

func (d *demo) orders(ctx context.Context, userID string) ([]demoOrder, error) {
	rows, err := d.db.Query(ctx, `SELECT id::text, order_number, status::text, coalesce(tracking_number, ''), total::float8
		FROM orders WHERE user_id = $1 ORDER BY created_at`, userID)
	if err != nil {
		return nil, fmt.Errorf("demo orders: %w", err)
	}
	defer rows.Close()
	out := []demoOrder{}
	for rows.Next() {
		var o demoOrder
		if err := rows.Scan(&o.ID, &o.OrderNumber, &o.Status, &o.TrackingNumber, &o.Total); err != nil {
			return nil, fmt.Errorf("demo orders: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write json", logkey.Err, err)
	}
}
