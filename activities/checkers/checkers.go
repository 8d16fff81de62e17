// Package checkers keeps a pool of warm sanity checkers: long-lived,
// sandboxed containers of the runtime image that only parse and compile
// (docker/image/runner/serve.py), so that a sanity check costs a request to
// a running container instead of a container start. Each checker sees one
// submission at a time, in a spool directory of its own that is emptied
// after every request; a checker that fails, hangs or crashes is killed and
// replaced, and the caller answers that request another way.
package checkers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Kinds of check.
const (
	KindPython = "python"
	KindJava   = "java"
)

// ErrUnavailable means no checker could take the request: none is warm
// (still starting, or being replaced), none was free within the pool's
// wait, or the pool is stopped.
var ErrUnavailable = errors.New("no warm checker available")

// ErrFailed means the checker did not answer the request: it crashed, hung
// past the request's time limit or answered nonsense. It has been killed.
var ErrFailed = errors.New("warm checker failed")

// Conn is a running checker container (sandbox.Server).
type Conn interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
	Close()
	Stderr() string
}

// StartFunc starts a checker container named name with the host directory
// spool mounted read-only at /spool, and returns once it is ready.
type StartFunc func(ctx context.Context, name, spool string) (Conn, error)

// Config sets up a Pool.
type Config struct {
	Size     int           // checkers kept warm
	SpoolDir string        // host directory holding each checker's spool directory
	Prefix   string        // container names are Prefix-<n>
	Timeout  time.Duration // per request; past it the checker is killed
	Wait     time.Duration // how long Check waits for a busy checker (none is waited for while none is warm)
	Start    StartFunc
	Log      *zap.Logger
}

// Request is one submission to check.
type Request struct {
	Kind      string   // KindPython or KindJava
	Dir       string   // host directory with the submission's files
	Forbid    []string // the assignment's forbidden modules
	MainClass string   // Java: the class the jar must contain
}

// Response is a checker's answer.
type Response struct {
	Result  json.RawMessage // the runner's result.json
	Jar     []byte          // Java: the compiled (or submitted) jar, on success
	Checker string          // the container that answered
}

// Pool hands requests to warm checkers. Run keeps it filled; Check uses it.
type Pool struct {
	cfg     Config
	idle    chan *checker
	replace chan struct{} // one token per checker to start
	seq     atomic.Int64  // container names
	reqs    atomic.Int64  // request IDs
	starts  atomic.Int64

	mu      sync.Mutex
	stopped bool
	live    map[*checker]bool
}

type checker struct {
	name  string
	spool string
	conn  Conn
}

// New returns a pool that Run fills.
func New(cfg Config) *Pool {
	if cfg.Size < 1 {
		cfg.Size = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	p := &Pool{cfg: cfg, idle: make(chan *checker, cfg.Size), replace: make(chan struct{}, cfg.Size), live: map[*checker]bool{}}
	for range cfg.Size {
		p.replace <- struct{}{}
	}
	return p
}

// Live is how many checkers are warm (idle or busy) now.
func (p *Pool) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// Starts is how many checker containers the pool has started.
func (p *Pool) Starts() int64 { return p.starts.Load() }

// Run starts the checkers and replaces each one that fails, until ctx
// ends; then it closes every checker (one still busy is closed when its
// request ends) and returns.
func (p *Pool) Run(ctx context.Context) {
	defer p.stop()
	if err := os.MkdirAll(p.cfg.SpoolDir, 0o755); err != nil {
		p.cfg.Log.Error("warm checkers disabled: spool directory", zap.Error(err))
		return
	}
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.replace:
		}
		c, err := p.startOne(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.cfg.Log.Warn("warm checker did not start", zap.Error(err), zap.Duration("retry_in", backoff))
			p.replace <- struct{}{}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if !p.put(c) {
			return
		}
	}
}

func (p *Pool) startOne(ctx context.Context) (*checker, error) {
	name := fmt.Sprintf("%s-%d", p.cfg.Prefix, p.seq.Add(1))
	spool := filepath.Join(p.cfg.SpoolDir, name)
	_ = os.RemoveAll(spool)
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	t0 := time.Now()
	p.starts.Add(1)
	conn, err := p.cfg.Start(ctx, name, spool)
	if err != nil {
		_ = os.RemoveAll(spool)
		return nil, err
	}
	p.cfg.Log.Info("warm checker ready", zap.String("container", name), zap.Duration("took", time.Since(t0)))
	c := &checker{name: name, spool: spool, conn: conn}
	p.mu.Lock()
	p.live[c] = true
	p.mu.Unlock()
	return c, nil
}

// put makes c idle, or closes it if the pool has stopped.
func (p *Pool) put(c *checker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		p.closeLocked(c)
		return false
	}
	p.idle <- c // never blocks: at most Size checkers exist
	return true
}

// discard closes a failed checker and asks Run for another.
func (p *Pool) discard(c *checker) {
	p.mu.Lock()
	p.closeLocked(c)
	stopped := p.stopped
	p.mu.Unlock()
	if !stopped {
		p.replace <- struct{}{}
	}
}

func (p *Pool) closeLocked(c *checker) {
	if !p.live[c] {
		return
	}
	delete(p.live, c)
	c.conn.Close()
	_ = os.RemoveAll(c.spool)
}

func (p *Pool) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for {
		select {
		case c := <-p.idle:
			p.closeLocked(c)
		default:
			return
		}
	}
}

// Check answers req with a warm checker. ErrUnavailable and ErrFailed
// (wrapped) mean the request was not answered; anything the checker
// answered is in the Response, whatever its verdict.
func (p *Pool) Check(ctx context.Context, req Request) (Response, error) {
	var c *checker
	select {
	case c = <-p.idle:
	default:
		// None is idle. While none is warm at all (the worker has just
		// started, or every checker is being replaced) waiting would only
		// delay the one-shot container; otherwise one is about to be free.
		if p.Live() == 0 {
			return Response{}, ErrUnavailable
		}
		wait := time.NewTimer(p.cfg.Wait)
		defer wait.Stop()
		select {
		case c = <-p.idle:
		case <-wait.C:
			return Response{}, ErrUnavailable
		case <-ctx.Done():
			return Response{}, ctx.Err()
		}
	}
	resp, err := p.call(ctx, c, req)
	if errors.Is(err, ErrFailed) {
		p.cfg.Log.Warn("warm checker failed: replacing it", zap.String("container", c.name), zap.Error(err))
		p.discard(c)
		return Response{}, err
	}
	p.put(c)
	return resp, err
}

// wire is serve.py's request and answer.
type wire struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind,omitempty"`
	Forbid    string          `json:"forbid,omitempty"`
	MainClass string          `json:"main_class,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Jar       string          `json:"jar,omitempty"`
	Error     string          `json:"error,omitempty"`
}

func (p *Pool) call(ctx context.Context, c *checker, req Request) (Response, error) {
	id := fmt.Sprintf("r%d", p.reqs.Add(1))
	dir := filepath.Join(c.spool, id)
	// The spool holds this request only: gone before the checker sees the next.
	defer func() { _ = os.RemoveAll(dir) }()
	if err := linkTree(req.Dir, dir); err != nil {
		return Response{}, fmt.Errorf("spool files: %w", err)
	}
	line, err := json.Marshal(wire{ID: id, Kind: req.Kind, Forbid: strings.Join(req.Forbid, ","), MainClass: req.MainClass})
	if err != nil {
		return Response{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	out, err := c.conn.Call(cctx, line)
	if err != nil {
		if ctx.Err() != nil {
			// The activity was canceled: not the checker's fault, but it
			// was killed mid-request all the same.
			return Response{}, fmt.Errorf("%w: %v", ErrFailed, ctx.Err())
		}
		return Response{}, fmt.Errorf("%w: %v: %s", ErrFailed, err, tailString(c.conn.Stderr(), 1024))
	}
	var ans wire
	if err := json.Unmarshal(out, &ans); err != nil {
		return Response{}, fmt.Errorf("%w: answer: %v", ErrFailed, err)
	}
	if ans.ID != id || ans.Error != "" || len(ans.Result) == 0 {
		return Response{}, fmt.Errorf("%w: answer for %q (want %q): %s", ErrFailed, ans.ID, id, ans.Error)
	}
	resp := Response{Result: ans.Result, Checker: c.name}
	if ans.Jar != "" {
		if resp.Jar, err = base64.StdEncoding.DecodeString(ans.Jar); err != nil {
			return Response{}, fmt.Errorf("%w: jar: %v", ErrFailed, err)
		}
	}
	return resp, nil
}

// linkTree makes dst a copy of the regular files and directories under
// src: hard links where the file system allows (the spool and the
// scratch directories share WorkDir), copies elsewhere. Symlinks are
// skipped: a submission has none.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		if err := os.Link(path, target); err == nil {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
