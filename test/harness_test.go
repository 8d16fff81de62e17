package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
)

// stack is a real gradeflow stack started for the tests: a Temporal dev
// server, a MongoDB-compatible server (or MONGODB_URI), and worker
// processes, all real programs from bin/. A missing part is a failure,
// never a skip.
type stack struct {
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
	procs        []*proc
}

// stackOptions choose how the stack starts.
type stackOptions struct {
	persistentTemporal bool // file DB, so the server can be restarted
}

func startStack(opts stackOptions) (s *stack, err error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gradeflow-e2e-")
	if err != nil {
		return nil, err
	}
	s = &stack{root: root, bin: envOr("GRADEFLOW_BIN", filepath.Join(root, "bin")), dir: dir,
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
		s.temporalDB = filepath.Join(dir, "temporal.db")
	}
	if err := s.startTemporal(ctx); err != nil {
		return nil, err
	}

	// MongoDB: a real server if the environment names one, else the embedded one.
	s.db = "gradeflow_e2e_" + randHex(4)
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		s.mongoURI = uri
	} else {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort())
		p, err := s.start("mongod", filepath.Join(s.bin, "gradeflow-mongod"), nil, "--listen", listen, "--dir", filepath.Join(dir, "mongo"))
		if err != nil {
			return nil, err
		}
		if err := p.waitLog(ctx, "ready mongodb://"); err != nil {
			return nil, err
		}
		s.mongoURI = "mongodb://" + listen + "/"
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
	s.temporalProc.terminate(30 * time.Second)
	time.Sleep(down)
	return s.startTemporal(ctx)
}

func (s *stack) startTemporal(ctx context.Context) error {
	args := []string{"--port", portOf(s.temporalAddr), "--ui-port", fmt.Sprint(freePort()), "--headless"}
	if s.temporalDB != "" {
		args = append(args, "--db", s.temporalDB)
	}
	p, err := s.start("temporal", filepath.Join(s.root, "deploy/dev/temporal.sh"), nil, args...)
	if err != nil {
		return err
	}
	s.temporalProc = p
	log := zap.NewNop()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := temporalclient.Dial(ctx, temporalclient.Config{HostPort: s.temporalAddr, Namespace: "default"}, log)
		if err == nil {
			if s.temporal != nil {
				s.temporal.Close()
			}
			s.temporal = c
			return nil
		}
		if time.Now().After(deadline) || p.exited() {
			return fmt.Errorf("temporal dev server did not start (log %s): %w", p.logPath, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	}
}

// startWorker starts a worker process serving queues and waits until it polls.
func (s *stack) startWorker(ctx context.Context, name, queues string, extraEnv ...string) (*proc, error) {
	env := append(append(s.env(), "GRADEFLOW_QUEUES="+queues), extraEnv...)
	p, err := s.start(name, filepath.Join(s.bin, "gradeflow-worker"), env)
	if err != nil {
		return nil, err
	}
	if err := p.waitLog(ctx, "workers started"); err != nil {
		return nil, err
	}
	return p, nil
}

// intake is a submission service on this stack, as the API and the
// starter have one.
func (s *stack) intake() *intake.Service {
	return intake.New(s.store, s.temporal, intake.Options{})
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
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].terminate(15 * time.Second)
	}
	if s.store != nil {
		_ = s.store.Close(context.Background())
	}
	if s.mongoProxy != nil {
		s.mongoProxy.close()
	}
	if s.temporal != nil {
		s.temporal.Close()
	}
	if os.Getenv("GRADEFLOW_KEEP_E2E") == "" {
		_ = os.RemoveAll(s.dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e stack kept in", s.dir)
	}
}

// proc is a child process with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func (s *stack) start(name, path string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(s.dir, "logs", fmt.Sprintf("%s-%d.log", name, len(s.procs)))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process alone (not its group): a crashed worker
// leaves its containers behind, which is the point.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate asks the process group to stop, and kills it after grace.
func (p *proc) terminate(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitLog waits until the process's log contains substr.
func (p *proc) waitLog(ctx context.Context, substr string) error {
	for {
		if f, err := os.Open(p.logPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), substr) {
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if p.exited() {
			out, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s exited before %q:\n%s", p.name, substr, tailString(string(out), 3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q: %w", p.name, substr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
