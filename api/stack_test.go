package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
)

// The real stack every test and benchmark of this package runs against: a
// MongoDB-compatible server and a Temporal dev server, started once by
// TestMain on free ports. There are no workers: started workflows wait.
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
	dir, err := os.MkdirTemp("", "gradeflow-api-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: temp dir:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()

	mongod, uri, err := startMongod(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: MongoDB-compatible server:", err)
		return 1
	}
	defer stop(mongod)
	temporal, hostPort, err := startTemporal(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: Temporal dev server:", err)
		return 1
	}
	defer stop(temporal)
	tc, err := dialTemporal(ctx, hostPort)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: Temporal dev server:", err)
		return 1
	}
	defer tc.Close()
	stack.mongoURI, stack.temporal, stack.hostPort = uri, tc, hostPort
	return m.Run()
}

// repoRoot is the module root, one level above this package.
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startMongod runs bin/gradeflow-mongod (or $GRADEFLOW_MONGOD) and waits
// for its ready line.
func startMongod(ctx context.Context, dir string) (*exec.Cmd, string, error) {
	bin := os.Getenv("GRADEFLOW_MONGOD")
	if bin == "" {
		bin = filepath.Join(repoRoot(), "bin", "gradeflow-mongod")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, "", fmt.Errorf("%s is missing: build it with 'cd deploy/devstack && go build -o %s ./cmd/gradeflow-mongod' (or make build): %w",
			bin, filepath.Join(repoRoot(), "bin", "gradeflow-mongod"), err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--dir", filepath.Join(dir, "mongo"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = newTail(filepath.Join(dir, "mongod.log"))
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- uri
			}
		}
		close(ready)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case uri, ok := <-ready:
		if !ok {
			stop(cmd)
			return nil, "", fmt.Errorf("%s exited before it was ready (log: %s)", bin, filepath.Join(dir, "mongod.log"))
		}
		return cmd, uri, nil
	case <-ctx.Done():
		stop(cmd)
		return nil, "", fmt.Errorf("%s not ready: %w", bin, ctx.Err())
	}
}

// startTemporal runs deploy/dev/temporal.sh and waits for its port.
func startTemporal(ctx context.Context, dir string) (*exec.Cmd, string, error) {
	script := filepath.Join(repoRoot(), "deploy", "dev", "temporal.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, "", fmt.Errorf("%s is missing: %w", script, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	uiPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(script, "--port", fmt.Sprint(port), "--ui-port", fmt.Sprint(uiPort), "--headless")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logPath := filepath.Join(dir, "temporal.log")
	out := newTail(logPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", script, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		conn, err := net.DialTimeout("tcp", hostPort, time.Second)
		if err == nil {
			_ = conn.Close()
			return cmd, hostPort, nil
		}
		select {
		case err := <-exited:
			return nil, "", fmt.Errorf("%s exited (%v) before serving; is the Temporal CLI installed (make tools)? output: %s",
				script, err, out.String())
		case <-ctx.Done():
			stop(cmd)
			return nil, "", fmt.Errorf("%s not serving on %s: %w", script, hostPort, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dialTemporal connects once the server answers health checks and knows
// the default namespace.
func dialTemporal(ctx context.Context, hostPort string) (client.Client, error) {
	var last error
	for ctx.Err() == nil {
		c, err := temporalclient.Dial(ctx, temporalclient.Config{HostPort: hostPort, Namespace: "default"}, zap.NewNop())
		if err == nil {
			_, err = c.WorkflowService().GetSystemInfo(ctx, nil)
			if err == nil {
				if _, err = c.DescribeTaskQueue(ctx, contract.TaskQueueGrade, enumspb.TASK_QUEUE_TYPE_WORKFLOW); err == nil {
					return c, nil
				}
			}
			c.Close()
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	return nil, fmt.Errorf("dial %s: %w (last: %v)", hostPort, ctx.Err(), last)
}

// stop ends a process this harness started, and its children.
func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// tail keeps a process's output in a file and its last bytes in memory,
// for error messages.
type tail struct {
	f    *os.File
	last []byte
}

func newTail(path string) *tail {
	f, _ := os.Create(path)
	return &tail{f: f}
}

func (t *tail) Write(p []byte) (int, error) {
	if t.f != nil {
		_, _ = t.f.Write(p)
	}
	t.last = append(t.last, p...)
	if len(t.last) > 4096 {
		t.last = t.last[len(t.last)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.last) }

// testEnv is one API server on the stack, with a database of its own so
// that counts made by one test never see another's documents.
type testEnv struct {
	t     testing.TB
	srv   *server
	http  *httptest.Server
	store *store.Store
	db    string
}

// testConfig is the configuration tests start from.
func testConfig() Config {
	return Config{
		PortalTokens:      []string{"portal-token"},
		StaffTokens:       []string{"staff-token"},
		MaxUpload:         1 << 20,
		MaxAssignment:     4 << 20,
		RatePerMinute:     0,
		RateBurst:         0,
		WebhookSecret:     "test-secret",
		RequestTimeout:    15 * time.Second,
		AssignmentTimeout: 30 * time.Second,
		QueueWindow:       10 * time.Minute,
		WorkerFresh:       30 * time.Second,
		QueueCacheTTL:     0,
		DefaultRun:        time.Minute,
	}
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
	if err := st.EnsureRateLimitIndexes(ctx); err != nil {
		t.Fatalf("indexes: %v", err)
	}
	srv := newServer(c, st, stack.temporal, log)
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
