package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// startServer runs the server in-process on a free port with a fresh data
// directory and returns its MongoDB URI. The server stops at test cleanup.
func startServer(tb testing.TB) string {
	tb.Helper()

	uri, _ := startServerTimed(tb)

	return uri
}

// startServerTimed is startServer that also returns the time from calling
// run until the ready line was written.
func startServerTimed(tb testing.TB) (string, time.Duration) {
	tb.Helper()

	uri, took, stop := launch(tb, filepath.Join(tb.TempDir(), "mongo"))
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("run: %v", err)
		}
	})

	return uri, took
}

// launch starts run in the background with data in dir and waits for the
// ready line. It returns the URI, the time until ready, and a function that
// shuts the server down and returns run's error.
func launch(tb testing.TB, dir string) (string, time.Duration, func() error) {
	tb.Helper()
	return launchBackend(tb, dir, "postgresql")
}

// launchBackend is launch on the given backend.
func launchBackend(tb testing.TB, dir, backend string) (string, time.Duration, func() error) {
	tb.Helper()

	cfg := config{listen: "127.0.0.1:0", dir: dir, backend: backend, logLevel: slog.LevelWarn}
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: cfg.logLevel}))

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)

	start := time.Now()
	go func() {
		err := run(ctx, cfg, logger, pw)
		pw.Close()
		done <- err
	}()

	line, readErr := bufio.NewReader(pr).ReadString('\n')
	took := time.Since(start)

	if readErr != nil {
		cancel()
		tb.Fatalf("server did not become ready: read: %v; run: %v", readErr, <-done)
	}

	uri, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ready ")
	if !ok || !strings.HasPrefix(uri, "mongodb://127.0.0.1:") || !strings.HasSuffix(uri, "/") {
		cancel()
		tb.Fatalf("unexpected ready line %q (run: %v)", line, <-done)
	}

	stop := func() error {
		cancel()
		return <-done
	}

	return uri, took, stop
}

// newClient connects the official driver to uri and disconnects at cleanup
// (registered after the server's cleanup, so it runs first).
func newClient(tb testing.TB, uri string) *mongo.Client {
	tb.Helper()

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			tb.Errorf("disconnect: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := client.Ping(ctx, nil); err != nil {
		tb.Fatalf("ping: %v", err)
	}

	return client
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{
			name: "defaults",
			want: config{listen: "127.0.0.1:27017", dir: ".data/mongo", backend: "postgresql", logLevel: slog.LevelWarn},
		},
		{
			name: "env",
			env:  map[string]string{"GRADEFLOW_MONGO_LISTEN": "127.0.0.1:1", "GRADEFLOW_MONGO_DIR": "/d", "GRADEFLOW_MONGO_BACKEND": "sqlite"},
			want: config{listen: "127.0.0.1:1", dir: "/d", backend: "sqlite", logLevel: slog.LevelWarn},
		},
		{
			name: "flags override env",
			args: []string{"--listen", ":2", "--dir", "x", "--log-level", "debug", "--backend", "postgresql"},
			env:  map[string]string{"GRADEFLOW_MONGO_LISTEN": "127.0.0.1:1", "GRADEFLOW_MONGO_DIR": "/d", "GRADEFLOW_MONGO_BACKEND": "sqlite"},
			want: config{listen: ":2", dir: "x", backend: "postgresql", logLevel: slog.LevelDebug},
		},
		{name: "bad level", args: []string{"--log-level", "loud"}, wantErr: "invalid --log-level"},
		{name: "bad backend", args: []string{"--backend", "mysql"}, wantErr: "invalid --backend"},
		{name: "extra args", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadyAndShutdown(t *testing.T) {
	for _, tc := range []struct{ backend, file string }{
		{"postgresql", "pg/data/PG_VERSION"},
		{"sqlite", "gradeflow.sqlite"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			// A data dir with a space, which needs escaping in the URIs.
			dir := filepath.Join(t.TempDir(), "my data")

			uri, took, stop := launchBackend(t, dir, tc.backend)
			t.Logf("ready %s after %v", uri, took)

			client, err := mongo.Connect(options.Client().ApplyURI(uri))
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if _, err := client.Database("gradeflow").Collection("c").InsertOne(ctx, map[string]string{"_id": "x"}); err != nil {
				t.Fatalf("insert: %v", err)
			}
			if err := client.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}

			if err := stop(); err != nil {
				t.Fatalf("run after shutdown: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Fatalf("database not in data dir: %v", err)
			}
		})
	}
}

func TestBadDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b")
	cfg := config{listen: "127.0.0.1:0", dir: dir, logLevel: slog.LevelWarn}

	var out strings.Builder
	err := run(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), &out)
	if err == nil || !strings.Contains(err.Error(), "must not contain") {
		t.Fatalf("err = %v, want rejection of '?'", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q despite failing", out.String())
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	dir := filepath.Join(t.TempDir(), "mongo")
	cfg := config{listen: l.Addr().String(), dir: dir, logLevel: slog.LevelWarn}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var out strings.Builder
	err = run(ctx, cfg, logger, &out)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v, want EADDRINUSE", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q despite failing", out.String())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir created before port check: %v", err)
	}
}
