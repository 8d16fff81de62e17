package datacache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// files returns a Fetch that writes one file of n bytes and counts its calls.
func files(n int, calls *atomic.Int32) Fetch {
	return func(ctx context.Context, dir string) error {
		if calls != nil {
			calls.Add(1)
		}
		return os.WriteFile(filepath.Join(dir, "data"), make([]byte, n), 0o644)
	}
}

func mustGet(t *testing.T, c *Cache, key string, fetch Fetch) *Handle {
	t.Helper()
	h, err := c.Get(context.Background(), key, fetch)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return h
}

func TestEvictsLeastRecentlyUsedUnpinned(t *testing.T) {
	tests := []struct {
		name    string
		steps   func(t *testing.T, c *Cache) // uses keys a, b, c of 40 bytes in a 100-byte cache
		present []string
		absent  []string
	}{
		{
			name: "oldest goes first",
			steps: func(t *testing.T, c *Cache) {
				for _, k := range []string{"a", "b", "c"} {
					mustGet(t, c, k, files(40, nil)).Release()
				}
			},
			present: []string{"b", "c"}, absent: []string{"a"},
		},
		{
			name: "a use makes an entry young again",
			steps: func(t *testing.T, c *Cache) {
				mustGet(t, c, "a", files(40, nil)).Release()
				mustGet(t, c, "b", files(40, nil)).Release()
				mustGet(t, c, "a", files(40, nil)).Release()
				mustGet(t, c, "c", files(40, nil)).Release()
			},
			present: []string{"a", "c"}, absent: []string{"b"},
		},
		{
			name: "a pinned entry is never evicted; the cache runs over budget until it is released",
			steps: func(t *testing.T, c *Cache) {
				a := mustGet(t, c, "a", files(40, nil))
				b := mustGet(t, c, "b", files(40, nil))
				cc := mustGet(t, c, "c", files(40, nil))
				if got := c.Stats().Bytes; got != 120 {
					t.Errorf("bytes while all pinned = %d, want 120", got)
				}
				b.Release()
				a.Release()
				cc.Release()
			},
			present: []string{"a", "c"}, absent: []string{"b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Open(t.TempDir(), 100)
			if err != nil {
				t.Fatal(err)
			}
			tt.steps(t, c)
			for _, k := range tt.present {
				if !c.Has(k) {
					t.Errorf("%s evicted, want kept", k)
				}
				if _, err := os.Stat(filepath.Join(c.root, k, "data")); err != nil {
					t.Errorf("%s: files gone: %v", k, err)
				}
			}
			for _, k := range tt.absent {
				if c.Has(k) {
					t.Errorf("%s kept, want evicted", k)
				}
				if _, err := os.Stat(filepath.Join(c.root, k)); !os.IsNotExist(err) {
					t.Errorf("%s: directory still on disk (%v)", k, err)
				}
			}
			if got := c.Stats().Bytes; got > 100 {
				t.Errorf("bytes after release = %d, over the 100-byte budget", got)
			}
		})
	}
}

func TestConcurrentGetsShareOneFetch(t *testing.T) {
	c, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	gate := make(chan struct{})
	slow := func(ctx context.Context, dir string) error {
		<-gate
		return files(10, &calls)(ctx, dir)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := c.Get(context.Background(), "k", slow)
			if err != nil {
				errs <- err
				return
			}
			if _, err := os.Stat(filepath.Join(h.Path, "data")); err != nil {
				errs <- err
			}
			h.Release()
		}()
	}
	time.Sleep(20 * time.Millisecond) // let the waiters queue up behind the fetch
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("fetch ran %d times, want 1", got)
	}
	if s := c.Stats(); s.Misses != 1 || s.Hits != 15 {
		t.Errorf("stats = %+v, want 1 miss and 15 hits", s)
	}
}

func TestAFetchOfOneKeyDoesNotBlockAnother(t *testing.T) {
	c, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	stuck := make(chan struct{})
	slowDone := make(chan struct{})
	defer func() { close(stuck); <-slowDone }() // before TempDir's cleanup
	go func() {
		defer close(slowDone)
		_, _ = c.Get(context.Background(), "slow", func(ctx context.Context, dir string) error {
			<-stuck
			return nil
		})
	}()
	done := make(chan error, 1)
	go func() {
		h, err := c.Get(context.Background(), "fast", files(1, nil))
		if err == nil {
			h.Release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a fetch of one key blocked a Get of another")
	}
}

func TestFailedFetchLeavesNothingAndIsRetried(t *testing.T) {
	root := t.TempDir()
	c, err := Open(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("network down")
	_, err = c.Get(context.Background(), "k", func(ctx context.Context, dir string) error {
		_ = os.WriteFile(filepath.Join(dir, "half"), []byte("partial"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Get error = %v, want %v", err, boom)
	}
	left, _ := os.ReadDir(root)
	if len(left) != 0 {
		t.Errorf("a failed fetch left %d entries on disk", len(left))
	}
	var calls atomic.Int32
	h := mustGet(t, c, "k", files(3, &calls))
	if info, err := os.Stat(h.Path); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("entry directory mode = %v (%v), want 0755: other users read it", info.Mode().Perm(), err)
	}
	h.Release()
	if calls.Load() != 1 || !c.Has("k") {
		t.Errorf("retry after a failure: calls %d, cached %v", calls.Load(), c.Has("k"))
	}
}

func TestWaiterGivesUpWithItsContext(t *testing.T) {
	c, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	stuck := make(chan struct{})
	slowDone := make(chan struct{})
	defer func() { close(stuck); <-slowDone }() // before TempDir's cleanup
	go func() {
		defer close(slowDone)
		_, _ = c.Get(context.Background(), "k", func(ctx context.Context, dir string) error {
			<-stuck
			return nil
		})
	}()
	for c.Stats().Misses == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "k", files(1, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter error = %v, want deadline exceeded", err)
	}
}

func TestReopenKeepsEntriesAndDropsHalfFetches(t *testing.T) {
	root := t.TempDir()
	c, err := Open(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "kept", files(7, nil)).Release()
	if err := os.MkdirAll(filepath.Join(root, tmpPrefix+"crashed-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Has("kept") || c2.Stats().Bytes != 7 {
		t.Errorf("reopened cache: has kept = %v, bytes = %d; want true, 7", c2.Has("kept"), c2.Stats().Bytes)
	}
	var calls atomic.Int32
	mustGet(t, c2, "kept", files(7, &calls)).Release()
	if calls.Load() != 0 {
		t.Error("an entry kept across a restart was fetched again")
	}
	if _, err := os.Stat(filepath.Join(root, tmpPrefix+"crashed-123")); !os.IsNotExist(err) {
		t.Error("a half-written fetch survived Open")
	}
}

func TestRejectsKeysThatAreNotNames(t *testing.T) {
	c, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "..", "../etc", "a/b", ".hidden", "-rf", strings.Repeat("x", 201)} {
		if _, err := c.Get(context.Background(), key, files(1, nil)); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}

func TestFetchMustWriteOnlyRegularFiles(t *testing.T) {
	c, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), "k", func(ctx context.Context, dir string) error {
		return os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	})
	if err == nil {
		t.Fatal("a fetch that made a symlink was accepted")
	}
	if c.Has("k") {
		t.Error("the bad fetch was cached")
	}
}
