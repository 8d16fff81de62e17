//go:build stack

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// The real stack every stack test and benchmark of this package runs
// against: a MongoDB-compatible server (or MONGODB_URI) and a Temporal dev
// server, started once by TestMain on free ports. There are no workers:
// started workflows wait.
var stack struct {
	mongoURI string
	temporal client.Client
	hostPort string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := stacktest.NewGroup("gradeflow-api-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer g.Stop()
	uri, err := g.Mongo(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: MongoDB-compatible server:", err)
		return 1
	}
	_, tc, hostPort, err := g.Temporal(ctx, stacktest.TemporalOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: Temporal dev server:", err)
		return 1
	}
	defer tc.Close()
	stack.mongoURI, stack.temporal, stack.hostPort = uri, tc, hostPort
	return m.Run()
}

func freePort() (int, error) { return stacktest.FreePort() }

// testEnv is one API server on the stack, with a database of its own so
// that counts made by one test never see another's documents.
type testEnv struct {
	t     testing.TB
	srv   *server
	http  *httptest.Server
	store *store.Store
	db    string
}

// newEnv starts an API server with cfg (nil: testConfig) on a fresh database.
func newEnv(t testing.TB, cfg *Config, log *zap.Logger) *testEnv {
	t.Helper()
	c := testConfig()
	if cfg != nil {
		c = *cfg
	}
	if log == nil {
		log = zap.NewNop()
	}
	db := "t_" + randHex(6)
	st, err := store.Open(stack.mongoURI, db)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatalf("indexes: %v", err)
	}
	srv := newServer(t.Context(), c, st, stack.temporal, log)
	hs := httptest.NewServer(srv.handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.DB().Drop(ctx)
		_ = st.Close(ctx)
	})
	return &testEnv{t: t, srv: srv, http: hs, store: st, db: db}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
