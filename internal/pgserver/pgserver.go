// Package pgserver starts throwaway PostgreSQL clusters with wal_level=logical,
// for `walcast demo`, the load tool and (through cdc/pgtest) the tests. It does
// not import testing, so the production binary can link it.
//
// A Cluster lives in a fresh temporary directory, listens on a unix socket in
// that directory (and optionally on a loopback TCP port), and is removed by Stop.
// initdb and postgres refuse to run as root, so when the process is root they run
// as the "postgres" OS user, which then owns the directory.
//
// Binaries are found through $PG_BIN (which must then hold them), else
// /usr/lib/postgresql/*/bin, else $PATH.
// Start returns ErrNoServer when none are found; cdc/pgtest turns that into a
// skip outside CI and a failure under CI=true.
//
// A Cluster is safe for use by multiple goroutines.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoServer reports that no PostgreSQL server binaries were found.
var ErrNoServer = errors.New("pgserver: PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package or set PG_BIN")

// Options configure a Cluster. The zero value is a logical-replication-ready
// cluster on a unix socket only.
type Options struct {
	// WalLevel is written as wal_level; empty means "logical".
	WalLevel string
	// TCPPort, when > 0, also listens on 127.0.0.1:TCPPort; -1 picks a free port.
	// Zero means unix socket only.
	TCPPort int
	// Settings are extra postgresql.conf lines ("name = value"), appended last.
	Settings []string
	// Durable keeps fsync on. By default fsync is off, which is fine for
	// throwaway data and makes tests much faster. synchronous_commit stays on:
	// with it off the walsender only sees a commit after the WAL writer flushes
	// (up to wal_writer_delay, 200ms), which would distort every latency figure.
	Durable bool
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir       string // temp root; removed by Stop
	DataDir   string
	SocketDir string
	Port      int // the port number (TCP port if TCPPort was set; else 5432 on the socket)
	TCP       bool
	bin       string
	cred      *syscall.Credential

	mu      sync.Mutex
	stopped bool
	down    bool // Kill stopped the server; Stop only removes the directory
}

// FindBin returns the directory holding initdb and pg_ctl. A PG_BIN without
// initdb is an error, not a fallback: a version matrix must not silently run
// on another version.
func FindBin() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("pgserver: PG_BIN=%s: %w", d, err)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

func pgMajor(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// Start initialises and starts a new cluster. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wcpg")
	if err != nil {
		return nil, fmt.Errorf("pgserver: temp dir: %w", err)
	}
	c := &Cluster{Dir: dir, DataDir: filepath.Join(dir, "data"), SocketDir: filepath.Join(dir, "s"), Port: 5432, bin: bin}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(c.SocketDir, 0o755); err != nil {
		return fail(fmt.Errorf("pgserver: socket dir: %w", err))
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail(fmt.Errorf("pgserver: running as root needs a postgres OS user: %w", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{dir, c.SocketDir} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(fmt.Errorf("pgserver: chown %s: %w", p, err))
			}
		}
	}
	if out, err := c.run(ctx, "initdb", "-D", c.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"); err != nil {
		return fail(fmt.Errorf("pgserver: initdb: %w\n%s", err, out))
	}
	walLevel := opts.WalLevel
	if walLevel == "" {
		walLevel = "logical"
	}
	listen := "''"
	if opts.TCPPort != 0 {
		c.TCP = true
		c.Port = opts.TCPPort
		if c.Port < 0 {
			if c.Port, err = freePort(); err != nil {
				return fail(err)
			}
		}
		listen = "'127.0.0.1'"
	}
	conf := []string{
		"listen_addresses = " + listen,
		"port = " + strconv.Itoa(c.Port),
		"unix_socket_directories = '" + c.SocketDir + "'",
		"wal_level = " + walLevel,
		"max_wal_senders = 20",
		"max_replication_slots = 20",
		"max_connections = 200",
		"shared_buffers = 128MB",
		"max_wal_size = 2GB",
		"log_min_messages = warning",
	}
	if !opts.Durable {
		conf = append(conf, "fsync = off", "full_page_writes = off")
	}
	conf = append(conf, opts.Settings...)
	if err := appendConf(c.DataDir, conf); err != nil {
		return fail(err)
	}
	if err := c.start(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// appendConf appends lines to dataDir's postgresql.conf (later lines win).
func appendConf(dataDir string, lines []string) error {
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: open postgresql.conf: %w", err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: write postgresql.conf: %w", err)
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-l", filepath.Join(c.Dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
		return fmt.Errorf("pgserver: pg_ctl start: %w\n%s\n%s", err, out, lastLines(log, 20))
	}
	return nil
}

// DSN returns a libpq keyword/value connection string for database db over the
// unix socket (or TCP when the cluster was started with a TCP port).
func (c *Cluster) DSN(db string) string {
	if c.TCP {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", c.Port, db)
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.SocketDir, c.Port, db)
}

// URL returns a postgres:// URL for database db, like DATABASE_URL.
func (c *Cluster) URL(db string) string {
	if c.TCP {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
	}
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.SocketDir, c.Port)
}

// Psql runs SQL through psql against database db and returns its output.
func (c *Cluster) Psql(ctx context.Context, db, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", c.DSN(db), "-c", sql)
	if _, err := os.Stat(cmd.Path); err != nil {
		if p, lerr := exec.LookPath("psql"); lerr == nil {
			cmd.Path = p
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pgserver: psql: %w: %s", err, out)
	}
	return string(out), nil
}

// CreateDatabase creates database name (owned by postgres).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	_, err := c.Psql(ctx, "postgres", fmt.Sprintf(`CREATE DATABASE %q`, name))
	return err
}

// Restart stops the server (mode "fast" or "immediate") and starts it again on the same data.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	if mode == "" {
		mode = "fast"
	}
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop: %w\n%s", err, out)
	}
	return c.start(ctx)
}

// Stop stops the server and removes its directory. It is safe to call twice.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []byte
	var err error
	if !c.down {
		out, err = c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "immediate", "-w", "stop")
	}
	if rerr := os.RemoveAll(c.Dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: stop: %w\n%s", err, out)
	}
	return nil
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	return lastLines(b, n)
}

func (c *Cluster) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
