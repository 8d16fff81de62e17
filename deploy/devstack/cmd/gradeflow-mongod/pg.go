package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The PostgreSQL backend: a private PostgreSQL cluster under the data
// directory, reached only through a Unix socket there, that FerretDB
// stores its collections in.
//
// FerretDB 1.24 sends a top-level equality filter to PostgreSQL as
// `_jsonb->'field' @> '<json>'`, and nothing else: ranges, $in, $or,
// nested fields, sort and limit are applied in FerretDB after it decoded
// every row PostgreSQL returned. The btree indexes FerretDB creates for
// createIndexes (on `_jsonb->'field'`) cannot serve `@>`, so every query
// scanned its table. This file is the one seam that fixes it, outside the
// store: an event trigger gives every index FerretDB creates a GIN twin
// (jsonb_path_ops) on each top-level field it covers, and
// plan_cache_mode=force_custom_plan lets the planner see the field name
// FerretDB binds as a parameter, so that the twin matches. The twins are
// built without GIN's pending list (fastupdate=off): each insert adds one
// entry per field, which is cheap, and no insert ever pays for merging a
// list that thousands of earlier ones left. The store then
// asks only top-level equalities on its hot paths, which MongoDB serves
// from the same declared indexes.

// pgBinDirs are where Debian and others install the server programs.
var pgBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin", "/usr/local/pgsql/bin"}

// pgBin finds a PostgreSQL server program.
func pgBin(name string) (string, error) {
	for _, d := range pgBinDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("PostgreSQL's %s not found (looked in %s and PATH): install postgresql-15 (make postgres)", name, strings.Join(pgBinDirs, ", "))
}

// pgDatabase is the database FerretDB keeps everything in.
const pgDatabase = "ferretdb"

// twinsSQL installs the event trigger that gives each index a GIN twin
// per top-level field. It is idempotent.
const twinsSQL = `
CREATE OR REPLACE FUNCTION gradeflow_gin_twins() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	cmd record;
	def text;
	tbl regclass;
	field text[];
BEGIN
	FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP
		SELECT i.indrelid::regclass, pg_get_indexdef(i.indexrelid) INTO tbl, def
		FROM pg_index i WHERE i.indexrelid = cmd.objid;
		IF def IS NULL OR def LIKE '% USING gin %' THEN
			CONTINUE;
		END IF;
		FOR field IN SELECT regexp_matches(def, '\(_jsonb -> ''([^'']+)''::text\)', 'g') LOOP
			EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops) WITH (fastupdate = off)',
				'gf_gin_' || substr(md5(tbl::text || '/' || field[1]), 1, 20), tbl, field[1]);
		END LOOP;
	END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS gradeflow_gin_twins;
CREATE EVENT TRIGGER gradeflow_gin_twins ON ddl_command_end
	WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION gradeflow_gin_twins();
`

// pgCluster is a running private PostgreSQL server.
type pgCluster struct {
	dataDir string
	sockDir string
	cmd     *exec.Cmd
	done    chan error // the server's exit
	log     *slog.Logger
}

// URL is the FerretDB PostgreSQL URL of the cluster's database.
func (c *pgCluster) URL() string {
	q := url.Values{"host": {c.sockDir}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + pgDatabase, RawQuery: q.Encode()}).String()
}

// startPG initialises (once) and starts the cluster under dir/pg, and
// makes sure its database and the GIN-twin trigger exist. The server runs
// as the postgres user when this process is root (PostgreSQL refuses
// root), and dies with this process.
func startPG(ctx context.Context, dir string, logger *slog.Logger) (*pgCluster, error) {
	c := &pgCluster{dataDir: filepath.Join(dir, "pg", "data"), sockDir: filepath.Join(dir, "pg", "run"), log: logger}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Dir(c.dataDir), c.sockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("postgres dir: %w", err)
		}
	}
	if cred != nil {
		if err := handOver(filepath.Join(dir, "pg"), cred); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		initdb, err := pgBin("initdb")
		if err != nil {
			return nil, err
		}
		// FerretDB refuses any locale but C.UTF-8 with UTF8.
		if out, err := pgCommand(ctx, cred, initdb, "-D", c.dataDir, "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb %s: %w: %s", c.dataDir, err, out)
		}
	}
	// A server left by a killed predecessor holds the data directory.
	stopStale(c.dataDir, logger)

	postgres, err := pgBin("postgres")
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "pg", "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres log: %w", err)
	}
	c.cmd = pgCommand(context.WithoutCancel(ctx), cred, postgres, "-D", c.dataDir,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories="+c.sockDir,
		"-c", "unix_socket_permissions=0700",
		// FerretDB binds field names as parameters: only a custom plan lets
		// the planner match them to the GIN twins.
		"-c", "plan_cache_mode=force_custom_plan",
		// A dev store: losing the last few hundred milliseconds of commits
		// in a host crash is fine, waiting for each fsync is not.
		"-c", "synchronous_commit=off",
		"-c", "shared_buffers=256MB",
		"-c", "max_connections=200",
		"-c", "track_counts=on",
	)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr.Pdeathsig = syscall.SIGINT // fast shutdown should this process die
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c.done = make(chan error, 1)
	go func() {
		c.done <- c.cmd.Wait()
		_ = logFile.Close()
	}()
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.setup(ctx, cred); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitReady polls the socket until the server accepts connections.
func (c *pgCluster) waitReady(ctx context.Context) error {
	isready, err := pgBin("pg_isready")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if exec.CommandContext(ctx, isready, "-q", "-h", c.sockDir, "-U", "postgres").Run() == nil {
			return nil
		}
		select {
		case err := <-c.done:
			return fmt.Errorf("postgres exited while starting (see %s): %v", filepath.Join(filepath.Dir(c.dataDir), "postgres.log"), err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("postgres did not accept connections within 60 s")
		}
	}
}

// setup creates the database and installs the GIN-twin trigger in it.
func (c *pgCluster) setup(ctx context.Context, cred *syscall.Credential) error {
	psql, err := pgBin("psql")
	if err != nil {
		psql, err = exec.LookPath("psql")
		if err != nil {
			return fmt.Errorf("psql not found: %w", err)
		}
	}
	run := func(db, sql string) (string, error) {
		cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
			"-h", c.sockDir, "-U", "postgres", "-d", db, "-c", sql)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("psql %s: %w: %s", db, err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	exists, err := run("postgres", "SELECT 1 FROM pg_database WHERE datname = '"+pgDatabase+"'")
	if err != nil {
		return err
	}
	if exists != "1" {
		if _, err := run("postgres", "CREATE DATABASE "+pgDatabase); err != nil {
			return err
		}
	}
	_, err = run(pgDatabase, twinsSQL)
	return err
}

// Stop shuts the server down (fast mode: open sessions are ended) and
// waits for it.
func (c *pgCluster) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// pgCredential is the user the server runs as: nil (this process's) unless
// this process is root, then the postgres user.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgCommand runs a PostgreSQL program as cred.
func pgCommand(ctx context.Context, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	return cmd
}

// handOver gives dir to the postgres user, and lets that user reach it:
// every ancestor gets the search (x) bit for others, nothing more, as a
// private temporary directory (0700) would otherwise keep it out.
func handOver(dir string, cred *syscall.Credential) error {
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("hand %s to postgres: %w", dir, err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("hand %s to postgres: %w", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let postgres reach %s: %w", d, err)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// stopStale stops a postmaster still running on dataDir (its pid file
// names it), left by a predecessor that was killed.
func stopStale(dataDir string, logger *slog.Logger) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil || pid <= 0 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil || p.Signal(syscall.Signal(0)) != nil {
		return // stale file; postgres removes it itself
	}
	logger.Warn("stopping a postgres left running on the data dir", slog.Int("pid", pid))
	_ = p.Signal(syscall.SIGINT)
	for range 300 {
		if p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
