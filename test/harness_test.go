//go:build stack

package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// stack is a real gradeflow stack started for the tests: a Temporal dev
// server, a MongoDB-compatible server (or MONGODB_URI), and worker
// processes, all real programs from bin/. A missing part is a failure,
// never a skip.
type stack struct {
	*stacktest.Group
	root         string // repository root
	bin          string
	dir          string // scratch for logs, DBs and worker dirs
	temporalAddr string
	temporalDB   string    // SQLite file when persistent
	mongoURI     string    // direct, for the tests' own observations
	mongoProxy   *tcpProxy // what the programs connect through, so tests can cut it
	proxiedURI   string
	db           string
	image        string
	store        *store.Store
	temporal     client.Client
	docker       *sandbox.Runner
	temporalProc *proc
}

// proc is a process of the stack.
type proc = stacktest.Proc

// stackOptions choose how the stack starts.
type stackOptions struct {
	persistentTemporal bool // file DB, so the server can be restarted
}

func startStack(opts stackOptions) (s *stack, err error) {
	g, err := stacktest.NewGroup("gradeflow-e2e-")
	if err != nil {
		return nil, err
	}
	s = &stack{Group: g, root: g.Root, bin: stacktest.Bin(g.Root), dir: g.Dir,
		image: envOr("GRADEFLOW_IMAGE", "gradeflow/hadoop:dev")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	for _, b := range []string{"gradeflow-worker", "gradeflow-api", "gradeflow-starter", "gradeflow-mongod"} {
		if _, err := os.Stat(filepath.Join(s.bin, b)); err != nil {
			return nil, fmt.Errorf("binary %s missing in %s: run 'make build' (or 'make test')", b, s.bin)
		}
	}
	if s.docker, err = sandbox.New(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.docker.Ping(ctx); err != nil {
		return nil, fmt.Errorf("%w: the end-to-end tests need a Docker engine (make docker)", err)
	}
	if ok, err := s.docker.ImageExists(ctx, s.image); err != nil || !ok {
		return nil, fmt.Errorf("runtime image %s missing (make images): %v", s.image, err)
	}

	// Temporal.
	s.temporalAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if opts.persistentTemporal {
		s.temporalDB = filepath.Join(s.dir, "temporal.db")
	}
	if err := s.startTemporal(ctx); err != nil {
		return nil, err
	}

	// MongoDB: a real server if the environment names one, else the embedded one.
	s.db = "gradeflow_e2e_" + randHex(4)
	if s.mongoURI, err = g.Mongo(ctx); err != nil {
		return nil, err
	}
	_, backend, err := proxiedURI(s.mongoURI, "")
	if err != nil {
		return nil, err
	}
	if s.mongoProxy, err = newTCPProxy(backend); err != nil {
		return nil, err
	}
	if s.proxiedURI, _, err = proxiedURI(s.mongoURI, s.mongoProxy.addr); err != nil {
		return nil, err
	}
	if s.store, err = store.Open(s.mongoURI, s.db); err != nil {
		return nil, err
	}
	if err := s.store.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// restartTemporal stops the Temporal dev server and starts it again on the
// same port and database file.
func (s *stack) restartTemporal(ctx context.Context, down time.Duration) error {
	if s.temporalDB == "" {
		return errors.New("restart needs a persistent Temporal database")
	}
	s.temporalProc.Terminate(30 * time.Second)
	time.Sleep(down)
	return s.startTemporal(ctx)
}

func (s *stack) startTemporal(ctx context.Context) error {
	p, c, _, err := s.Temporal(ctx, stacktest.TemporalOptions{Addr: s.temporalAddr, DB: s.temporalDB})
	if err != nil {
		return err
	}
	if s.temporal != nil {
		s.temporal.Close()
	}
	s.temporalProc, s.temporal = p, c
	return nil
}

// env is the environment every gradeflow process of this stack gets.
func (s *stack) env() []string {
	return []string{
		"TEMPORAL_ADDRESS=" + s.temporalAddr,
		"MONGODB_URI=" + s.proxiedURI,
		"GRADEFLOW_DB=" + s.db,
		"GRADEFLOW_IMAGE=" + s.image,
		"GRADEFLOW_WORKDIR=" + filepath.Join(s.dir, "work"),
		"GRADEFLOW_JANITOR_EVERY=2s",
		"GRADEFLOW_STOP_TIMEOUT=10s",
		"GRADEFLOW_WEBHOOK_ALLOW_PRIVATE=true", // the test receivers listen on loopback
		"GRADEFLOW_RUNTIME_IMAGES=" + extraImage,
	}
}

// extraImage is the example runtime image with extra Python packages
// (make images builds it), which the stack allows assignments to name.
var extraImage = envOr("GRADEFLOW_EXTRA_IMAGE", "gradeflow/hadoop-extra:dev")

// startWorker starts a worker process serving queues and waits until it polls.
func (s *stack) startWorker(ctx context.Context, name, queues string, extraEnv ...string) (*proc, error) {
	env := append(append(s.env(), "GRADEFLOW_QUEUES="+queues), extraEnv...)
	p, err := s.Start(name, filepath.Join(s.bin, "gradeflow-worker"), env)
	if err != nil {
		return nil, err
	}
	if err := p.WaitLog(ctx, "workers started"); err != nil {
		return nil, err
	}
	return p, nil
}

// intake is a submission service on this stack, as the API and the
// starter have one.
func (s *stack) intake() *intake.Service {
	return intake.New(s.store, s.temporal, intake.Options{AllowPrivateWebhooks: true, RuntimeImages: []string{extraImage}})
}

// starter runs the starter CLI against this stack.
func (s *stack) starter(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "gradeflow-starter"), args...)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), s.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("starter %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// containers lists this stack's grading containers for one submission.
func (s *stack) containers(ctx context.Context, submissionID string) ([]sandbox.Managed, error) {
	all, err := s.docker.ListManaged(ctx)
	if err != nil {
		return nil, err
	}
	var out []sandbox.Managed
	for _, c := range all {
		if c.Labels[sandbox.LabelSubmission] == submissionID {
			out = append(out, c)
		}
	}
	return out, nil
}

// waitRunning waits until a job container of one of ids runs.
func (s *stack) waitRunning(t testing.TB, ctx context.Context, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	waitFor(t, 2*time.Minute, "a job container to run", func() (bool, error) {
		all, err := s.docker.ListManaged(ctx)
		for _, c := range all {
			if want[c.Labels[sandbox.LabelSubmission]] && c.Labels[sandbox.LabelKind] == "execute" && c.State == "running" {
				return true, nil
			}
		}
		return false, err
	})
}

func (s *stack) stop() {
	if s.store != nil {
		_ = s.store.Close(context.Background())
	}
	if s.mongoProxy != nil {
		s.mongoProxy.close()
	}
	if s.temporal != nil {
		s.temporal.Close()
	}
	s.Group.Stop()
}

func freePort() int {
	port, err := stacktest.FreePort()
	if err != nil {
		panic(err)
	}
	return port
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
}

// restoreExecuteWorker starts the shared execute worker again if a test
// stopped or replaced it with one of its own settings. It terminates the
// one it replaces, which may have stopped already.
func restoreExecuteWorker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	executeWorker.Terminate(30 * time.Second)
	w, err := stk.startWorker(ctx, "worker-execute", "execute")
	if err != nil {
		t.Fatal(err)
	}
	executeWorker = w
}
