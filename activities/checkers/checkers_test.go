package checkers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConn is a checker container: answer decides each request's answer
// from the request and the files its spool directory holds at the time.
type fakeConn struct {
	spool  string
	answer func(w wire, files []string) ([]byte, error)
	mu     sync.Mutex
	closed bool
}

func (c *fakeConn) Call(ctx context.Context, req []byte) ([]byte, error) {
	var w wire
	if err := json.Unmarshal(req, &w); err != nil {
		return nil, err
	}
	var files []string
	_ = filepath.WalkDir(c.spool, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(c.spool, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	return c.answer(w, files)
}

func (c *fakeConn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
}

func (c *fakeConn) Stderr() string { return "" }

// pool starts a pool of size n whose checkers answer with answer, and
// returns it with the conns it started so far and a stop function.
func pool(t *testing.T, n int, answer func(w wire, files []string) ([]byte, error)) (*Pool, func() []*fakeConn, func()) {
	t.Helper()
	var mu sync.Mutex
	var conns []*fakeConn
	p := New(Config{
		Size: n, SpoolDir: filepath.Join(t.TempDir(), "spool"), Prefix: "gradeflow-checker-test",
		Timeout: time.Second, Wait: 2 * time.Second,
		Start: func(_ context.Context, name, spool string) (Conn, error) {
			c := &fakeConn{spool: spool, answer: answer}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			return c, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return p, func() []*fakeConn {
		mu.Lock()
		defer mu.Unlock()
		return append([]*fakeConn(nil), conns...)
	}, stop
}

// waitLive waits until the pool has n live checkers.
func waitLive(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p.Live() >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pool has fewer than %d live checkers", n)
}

// submission writes files into a fresh directory.
func submission(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckAnswers(t *testing.T) {
	p, _, _ := pool(t, 1, func(w wire, files []string) ([]byte, error) {
		// The checker sees this request's files only, under its ID.
		want := []string{w.ID + "/lib/tok.py", w.ID + "/mapper.py"}
		if strings.Join(files, ",") != strings.Join(want, ",") {
			return json.Marshal(wire{ID: w.ID, Error: "spool holds " + strings.Join(files, ",")})
		}
		return json.Marshal(wire{ID: w.ID, Result: json.RawMessage(`{"ok":true,"kind":"` + w.Kind + `","message":"` + w.Forbid + `"}`), Jar: "UEs="})
	})
	waitLive(t, p, 1)
	for i := 0; i < 3; i++ {
		resp, err := p.Check(context.Background(), Request{Kind: KindJava, Dir: submission(t, "mapper.py", "lib/tok.py"), Forbid: []string{"os", "socket"}})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Result) != `{"ok":true,"kind":"java","message":"os,socket"}` || string(resp.Jar) != "PK" || resp.Checker != "gradeflow-checker-test-1" {
			t.Fatalf("response %s jar %q checker %s", resp.Result, resp.Jar, resp.Checker)
		}
	}
	if p.Starts() != 1 {
		t.Errorf("%d checkers started, want 1 for 3 checks", p.Starts())
	}
	entries, _ := os.ReadDir(filepath.Join(p.cfg.SpoolDir, "gradeflow-checker-test-1"))
	if len(entries) != 0 {
		t.Errorf("spool not emptied after the checks: %v", entries)
	}
}

// TestFailedCheckerReplaced: a checker that crashes, hangs or answers
// nonsense is closed and replaced, and Check says it did not answer.
func TestFailedCheckerReplaced(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w wire) ([]byte, error)
	}{
		{"crash", func(wire) ([]byte, error) { return nil, errors.New("EOF") }},
		{"nonsense", func(wire) ([]byte, error) { return []byte("not json"), nil }},
		{"another request's answer", func(wire) ([]byte, error) { return json.Marshal(wire{ID: "r999", Result: json.RawMessage(`{}`)}) }},
		{"no result", func(w wire) ([]byte, error) { return json.Marshal(wire{ID: w.ID}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := true
			p, conns, _ := pool(t, 1, func(w wire, _ []string) ([]byte, error) {
				if bad {
					return tc.answer(w)
				}
				return json.Marshal(wire{ID: w.ID, Result: json.RawMessage(`{"ok":true}`)})
			})
			waitLive(t, p, 1)
			_, err := p.Check(context.Background(), Request{Kind: KindPython, Dir: submission(t, "mapper.py")})
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("error %v, want ErrFailed", err)
			}
			bad = false
			waitLive(t, p, 1)
			if _, err := p.Check(context.Background(), Request{Kind: KindPython, Dir: submission(t, "mapper.py")}); err != nil {
				t.Fatalf("after the replacement: %v", err)
			}
			cs := conns()
			if len(cs) != 2 || !cs[0].closed || cs[1].closed {
				t.Fatalf("conns %d, first closed %v, want the failed one closed and a second open", len(cs), len(cs) > 0 && cs[0].closed)
			}
			if _, err := os.Stat(cs[0].spool); !os.IsNotExist(err) {
				t.Errorf("failed checker's spool %s still there: %v", cs[0].spool, err)
			}
		})
	}
}

func TestStopClosesCheckers(t *testing.T) {
	p, conns, stop := pool(t, 2, func(w wire, _ []string) ([]byte, error) {
		return json.Marshal(wire{ID: w.ID, Result: json.RawMessage(`{"ok":true}`)})
	})
	waitLive(t, p, 2)
	if _, err := p.Check(context.Background(), Request{Kind: KindPython, Dir: submission(t, "a.py")}); err != nil {
		t.Fatal(err)
	}
	stop()
	for _, c := range conns() {
		if !c.closed {
			t.Errorf("checker on %s left open after stop", c.spool)
		}
	}
	p.cfg.Wait = 10 * time.Millisecond
	if _, err := p.Check(context.Background(), Request{Kind: KindPython, Dir: submission(t, "a.py")}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("check after stop: %v, want ErrUnavailable", err)
	}
}

// TestColdPoolDoesNotWait: while no checker is warm yet, Check answers
// ErrUnavailable at once, so the caller's one-shot container is not
// delayed by the pool's wait.
func TestColdPoolDoesNotWait(t *testing.T) {
	release := make(chan struct{})
	p := New(Config{
		Size: 1, SpoolDir: filepath.Join(t.TempDir(), "spool"), Prefix: "gradeflow-checker-cold",
		Timeout: time.Second, Wait: time.Minute,
		Start: func(ctx context.Context, _, spool string) (Conn, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &fakeConn{spool: spool}, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	start := time.Now()
	if _, err := p.Check(context.Background(), Request{Kind: KindPython, Dir: submission(t, "a.py")}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a cold pool kept the check %s", took)
	}
	close(release)
}
