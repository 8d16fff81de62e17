// Command gradeflow-mongod is the embedded MongoDB wire-protocol server of
// gradeflow's local stack: FerretDB v1 on a private PostgreSQL cluster that
// it starts under its data directory (or, with --backend sqlite, on SQLite
// files), so a local stack runs without a real mongod.
//
// Usage:
//
//	gradeflow-mongod [--listen 127.0.0.1:27017] [--dir .data/mongo] [--backend postgresql|sqlite] [--log-level warn]
//
// Flags default to the environment variables GRADEFLOW_MONGO_LISTEN and
// GRADEFLOW_MONGO_DIR when set. Once the server accepts connections it prints
// exactly one line, "ready mongodb://<listen>/", to stdout; logs go to stderr.
// SIGINT or SIGTERM shuts it down gracefully.
//
// It is not meant for production: FerretDB lacks parts of MongoDB (see
// storecheck_test.go for what gradeflow's store relies on). On PostgreSQL
// (the default) every index the store declares gets GIN twins that serve
// FerretDB's top-level equality filters (see pg.go), so lookups, updates
// and the store's hot queries read only the documents they match; other
// filter parts are applied after. On SQLite every query scans its
// collection: keep such data small.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// config is the command-line configuration.
type config struct {
	listen   string     // TCP address to listen on, host:port
	dir      string     // directory holding the PostgreSQL cluster or the SQLite databases
	backend  string     // "postgresql" or "sqlite"
	logLevel slog.Level // minimum level logged to stderr
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "gradeflow-mongod: %v\n", err)
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, cfg, logger, os.Stdout); err != nil {
		stop()
		fmt.Fprintf(os.Stderr, "gradeflow-mongod: %v\n", err)
		os.Exit(1)
	}
}

// parseConfig parses command-line args; getenv supplies flag defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	cfg := config{
		listen:  envOr(getenv, "GRADEFLOW_MONGO_LISTEN", "127.0.0.1:27017"),
		dir:     envOr(getenv, "GRADEFLOW_MONGO_DIR", ".data/mongo"),
		backend: envOr(getenv, "GRADEFLOW_MONGO_BACKEND", "postgresql"),
	}

	fs := flag.NewFlagSet("gradeflow-mongod", flag.ContinueOnError)
	fs.StringVar(&cfg.listen, "listen", cfg.listen, "TCP `address` to listen on (env GRADEFLOW_MONGO_LISTEN)")
	fs.StringVar(&cfg.dir, "dir", cfg.dir, "data `directory`, created if missing (env GRADEFLOW_MONGO_DIR)")
	fs.StringVar(&cfg.backend, "backend", cfg.backend, "storage `backend`: postgresql (a private cluster under --dir) or sqlite (env GRADEFLOW_MONGO_BACKEND)")
	level := fs.String("log-level", "warn", "log `level`: debug, info, warn or error")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("invalid --log-level %q: %w", *level, err)
	}
	if cfg.listen == "" {
		return config{}, errors.New("--listen must not be empty")
	}
	if cfg.dir == "" {
		return config{}, errors.New("--dir must not be empty")
	}
	if cfg.backend != "postgresql" && cfg.backend != "sqlite" {
		return config{}, fmt.Errorf("invalid --backend %q: postgresql or sqlite", cfg.backend)
	}

	return cfg, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// run serves until ctx is canceled. It writes the ready line to stdout once
// the server accepts connections, and returns after a graceful shutdown.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	if err := checkPortFree(cfg.listen); err != nil {
		return err
	}

	sqliteURL, err := prepareDir(cfg.dir)
	if err != nil {
		return err
	}
	fc := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: cfg.listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	}
	if cfg.backend == "postgresql" {
		pg, err := startPG(ctx, cfg.dir, logger)
		if err != nil {
			return err
		}
		defer pg.Stop()
		fc.Handler, fc.SQLiteURL, fc.PostgreSQLURL = "postgresql", "", pg.URL()
	}

	// Listening starts inside New; the backend is opened there too.
	// The embedded package never starts FerretDB's telemetry reporter (which
	// also does the update check) and marks telemetry disabled and locked,
	// so nothing tries to reach the internet.
	fdb, err := ferretdb.New(fc)
	if err != nil {
		return fmt.Errorf("start FerretDB on %s: %w", cfg.listen, err)
	}

	done := make(chan error, 1)
	go func() { done <- fdb.Run(ctx) }()

	// The socket is bound and the backend is open once New returns, so
	// clients can connect from now on (the kernel queues them until the
	// accept loop in Run picks them up). MongoDBURI reports the bound
	// address, so --listen with port 0 works too.
	uri := fdb.MongoDBURI()
	if _, err := fmt.Fprintf(stdout, "ready %s\n", uri); err != nil {
		logger.Warn("cannot write ready line", slog.Any("error", err))
	}
	logger.Info("serving", slog.String("uri", uri), slog.String("dir", cfg.dir), slog.String("backend", cfg.backend))

	if err := <-done; err != nil {
		return fmt.Errorf("run FerretDB: %w", err)
	}
	logger.Info("stopped")

	return nil
}

// prepareDir creates dir and returns the SQLite URI FerretDB expects
// (an absolute "file:" URI ending with a slash).
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve data dir %q: %w", dir, err)
	}
	// FerretDB puts the unescaped path into the URIs of the database files,
	// so these characters would silently put the data somewhere else.
	if strings.ContainsAny(abs, "?#%") {
		return "", fmt.Errorf("data dir %q must not contain '?', '#' or '%%'", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}

	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/", OmitHost: true}

	return u.String(), nil
}

// checkPortFree fails fast with a clear error when addr is already taken.
// FerretDB flattens its listen error into a string, so probe first to keep
// syscall.EADDRINUSE inspectable by callers.
func checkPortFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s is already in use (another gradeflow-mongod or mongod running?): %w", addr, err)
		}
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("release probe listener on %s: %w", addr, err)
	}

	return nil
}
