package pgserver

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// StandbyOptions configure StartStandby.
type StandbyOptions struct {
	// Slot is the physical replication slot the standby streams from; it is
	// created on the primary before the backup so no WAL is lost. Required.
	Slot string
	// DB is the database primary_conninfo names (slot synchronisation on
	// Postgres 17+ needs one); empty means "postgres".
	DB string
	// Settings are extra postgresql.conf lines for the standby, appended last.
	Settings []string
}

// StartStandby makes a streaming physical standby of c on a new port and
// starts it. It takes the base backup with the low-level backup API
// (pg_backup_start, a file copy, pg_backup_stop), because not every server
// build ships pg_basebackup. The standby listens like c (unix socket, and TCP
// on a free port when c uses TCP). Stop it with Stop.
func (c *Cluster) StartStandby(ctx context.Context, opts StandbyOptions) (*Cluster, error) {
	if opts.Slot == "" {
		return nil, fmt.Errorf("pgserver: standby: a physical slot name is required")
	}
	if opts.DB == "" {
		opts.DB = "postgres"
	}
	dir, err := os.MkdirTemp("", "wcpg")
	if err != nil {
		return nil, fmt.Errorf("pgserver: temp dir: %w", err)
	}
	s := &Cluster{Dir: dir, DataDir: filepath.Join(dir, "data"), SocketDir: filepath.Join(dir, "s"), Port: 5432, TCP: c.TCP, bin: c.bin, cred: c.cred}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(s.SocketDir, 0o755); err != nil {
		return fail(fmt.Errorf("pgserver: socket dir: %w", err))
	}
	if c.TCP {
		if s.Port, err = freePort(); err != nil {
			return fail(err)
		}
	} else {
		s.Port = c.Port + 1 // a different socket directory; the port only names the socket file
	}

	conn, err := pgconn.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fail(fmt.Errorf("pgserver: standby: connect to primary: %w", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot('"+opts.Slot+"', true)").ReadAll(); err != nil {
		return fail(fmt.Errorf("pgserver: standby: create physical slot: %w", err))
	}
	if _, err := conn.Exec(ctx, "SELECT pg_backup_start('pgserver standby', true)").ReadAll(); err != nil {
		return fail(fmt.Errorf("pgserver: standby: pg_backup_start: %w", err))
	}
	if err := copyDataDir(c.DataDir, s.DataDir); err != nil {
		return fail(fmt.Errorf("pgserver: standby: copy data directory: %w", err))
	}
	res, err := conn.Exec(ctx, "SELECT labelfile FROM pg_backup_stop(true)").ReadAll()
	if err != nil || len(res) == 0 || len(res[0].Rows) != 1 {
		return fail(fmt.Errorf("pgserver: standby: pg_backup_stop: %v", err))
	}
	if err := os.WriteFile(filepath.Join(s.DataDir, "backup_label"), res[0].Rows[0][0], 0o600); err != nil {
		return fail(fmt.Errorf("pgserver: standby: backup_label: %w", err))
	}
	if err := os.WriteFile(filepath.Join(s.DataDir, "standby.signal"), nil, 0o600); err != nil {
		return fail(fmt.Errorf("pgserver: standby: standby.signal: %w", err))
	}
	primary := fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", c.SocketDir, c.Port, opts.DB)
	if c.TCP {
		primary = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s", c.Port, opts.DB)
	}
	conf := []string{
		"port = " + strconv.Itoa(s.Port),
		"unix_socket_directories = '" + s.SocketDir + "'",
		"hot_standby = on",
		"primary_conninfo = '" + primary + "'",
		"primary_slot_name = '" + opts.Slot + "'",
	}
	conf = append(conf, opts.Settings...)
	if err := appendConf(s.DataDir, conf); err != nil {
		return fail(err)
	}
	if s.cred != nil {
		if err := chownTree(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fail(err)
		}
	}
	if err := s.start(ctx); err != nil {
		return fail(err)
	}
	return s, nil
}

// Promote promotes a standby to primary and waits until it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-w", "-t", "60", "promote"); err != nil {
		return fmt.Errorf("pgserver: pg_ctl promote: %w\n%s", err, out)
	}
	return nil
}

// Kill stops the server at once (pg_ctl stop -m immediate), like a crash, and
// leaves its directory for Stop to remove.
func (c *Cluster) Kill(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop -m immediate: %w\n%s", err, out)
	}
	c.mu.Lock()
	c.down = true
	c.mu.Unlock()
	return nil
}

// copyDataDir copies a running cluster's data directory for a base backup,
// leaving out what a backup must not carry: the postmaster's pid and options
// files, WAL (the standby streams it), and replication slots.
func copyDataDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // removed while copying (a running server)
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			switch rel {
			case "pg_wal", "pg_replslot", "pg_stat_tmp":
				if rel == "pg_wal" {
					if err := os.MkdirAll(filepath.Join(target, "archive_status"), 0o700); err != nil {
						return err
					}
				}
				return filepath.SkipDir
			}
			return nil
		}
		switch rel {
		case "postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map":
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("pgserver: chown %s: %w", p, err)
		}
		return nil
	})
}
