// Package stacktest starts the real parts of a gradeflow stack for tests:
// the embedded MongoDB-compatible server (or the MongoDB that MONGODB_URI
// names), a Temporal dev server, and gradeflow's own programs, each a
// child process on free ports with its output in a log file. The API's
// tests, the store's tests and the end-to-end tests in test/ share it. A
// part that cannot start is an error, never a skip.
package stacktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/temporalclient"
)

// RepoRoot returns the module root: the nearest directory above the
// working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Bin returns where gradeflow's binaries are: $GRADEFLOW_BIN, or bin/ in
// the repository.
func Bin(root string) string {
	if b := os.Getenv("GRADEFLOW_BIN"); b != "" {
		return b
	}
	return filepath.Join(root, "bin")
}

// FreePort returns a TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Group is the child processes of one test binary, with their logs under
// Dir. Stop ends them all.
type Group struct {
	Root string // repository root
	Dir  string // scratch: logs, databases
	// MongoDir is the data directory of the embedded server Mongo
	// started ("" when MONGODB_URI names a server): its PostgreSQL
	// cluster's socket is in MongoDir/pg/run.
	MongoDir string

	mu    sync.Mutex
	procs []*Proc
}

// NewGroup makes a group with a fresh scratch directory named after prefix.
func NewGroup(prefix string) (*Group, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	return &Group{Root: root, Dir: dir}, nil
}

// Stop terminates every process, newest first, and removes the scratch
// directory unless GRADEFLOW_KEEP_E2E is set.
func (g *Group) Stop() {
	g.mu.Lock()
	procs := g.procs
	g.procs = nil
	g.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Terminate(15 * time.Second)
	}
	if os.Getenv("GRADEFLOW_KEEP_E2E") == "" {
		_ = os.RemoveAll(g.Dir)
	} else {
		fmt.Fprintln(os.Stderr, "test stack kept in", g.Dir)
	}
}

// Proc is a child process with its output in a log file.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
}

// Start runs the program at path in its own process group, in the
// repository root, with env added to this process's environment.
func (g *Group) Start(name, path string, env []string, args ...string) (*Proc, error) {
	g.mu.Lock()
	n := len(g.procs)
	g.mu.Unlock()
	logPath := filepath.Join(g.Dir, "logs", fmt.Sprintf("%s-%d.log", name, n))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = g.Root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the process alone (not its group): a crashed
// worker leaves its containers behind, which is what fault tests want.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate asks the process group to stop, and kills it after grace.
func (p *Proc) Terminate(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Tail returns the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	out, _ := os.ReadFile(p.LogPath)
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return string(out)
}

// WaitLog waits until the process's log contains substr.
func (p *Proc) WaitLog(ctx context.Context, substr string) error {
	for {
		if f, err := os.Open(p.LogPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), substr) {
					_ = f.Close()
					return nil
				}
			}
			_ = f.Close()
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before %q:\n%s", p.Name, substr, p.Tail(3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q: %w", p.Name, substr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Mongo returns the URI of a MongoDB server: MONGODB_URI when set, else
// a fresh embedded server (bin/gradeflow-mongod or $GRADEFLOW_MONGOD).
func (g *Group) Mongo(ctx context.Context) (string, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return uri, nil
	}
	bin := os.Getenv("GRADEFLOW_MONGOD")
	if bin == "" {
		bin = filepath.Join(Bin(g.Root), "gradeflow-mongod")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing: build it with 'make build': %w", bin, err)
	}
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	g.MongoDir = filepath.Join(g.Dir, "mongo")
	p, err := g.Start("mongod", bin, nil, "--listen", listen, "--dir", g.MongoDir)
	if err != nil {
		return "", err
	}
	if err := p.WaitLog(ctx, "ready mongodb://"); err != nil {
		return "", err
	}
	return "mongodb://" + listen + "/", nil
}

// TemporalOptions choose how a Temporal dev server starts.
type TemporalOptions struct {
	Addr string // host:port; "" for a free port
	DB   string // SQLite file, so that the server can be restarted; "" for in-memory
}

// Temporal starts a Temporal dev server (deploy/dev/temporal.sh) and
// returns it with a client, once the server answers and knows the default
// namespace.
func (g *Group) Temporal(ctx context.Context, opts TemporalOptions) (*Proc, client.Client, string, error) {
	addr := opts.Addr
	if addr == "" {
		port, err := FreePort()
		if err != nil {
			return nil, nil, "", err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	uiPort, err := FreePort()
	if err != nil {
		return nil, nil, "", err
	}
	args := []string{"--port", addr[strings.LastIndexByte(addr, ':')+1:], "--ui-port", fmt.Sprint(uiPort), "--headless"}
	if opts.DB != "" {
		args = append(args, "--db", opts.DB)
	}
	p, err := g.Start("temporal", filepath.Join(g.Root, "deploy", "dev", "temporal.sh"), nil, args...)
	if err != nil {
		return nil, nil, "", err
	}
	var last error
	for ctx.Err() == nil && !p.Exited() {
		c, err := temporalclient.Dial(ctx, temporalclient.Config{HostPort: addr, Namespace: "default"}, zap.NewNop())
		if err == nil {
			if _, err = c.DescribeTaskQueue(ctx, contract.TaskQueueGrade, enumspb.TASK_QUEUE_TYPE_WORKFLOW); err == nil {
				return p, c, addr, nil
			}
			c.Close()
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, nil, "", fmt.Errorf("temporal dev server on %s did not start (is the Temporal CLI installed? make tools; log %s): %v: %s",
		addr, p.LogPath, last, p.Tail(2000))
}

// Files lists the files of GridFS bucket whose names start with prefix,
// sorted, for tests that check what was stored or left behind. The store
// itself never lists: it reads the names its documents hold. On the
// embedded server this scans the files collection, which is why it lives
// here.
func Files(ctx context.Context, db *mongo.Database, bucket, prefix string) ([]string, error) {
	cur, err := db.Collection(bucket+".files").Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(prefix)}}}})
	if err != nil {
		return nil, fmt.Errorf("list files %s: %w", prefix, err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list files %s: %w", prefix, err)
	}
	names := make([]string, 0, len(docs))
	for _, d := range docs {
		names = append(names, d.ID)
	}
	slices.Sort(names)
	return names, nil
}

// ReadDir reads every file under dir, keyed by its slash-separated path
// relative to dir: a submission directory as the portal uploads it.
func ReadDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		data, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	return files, err
}
