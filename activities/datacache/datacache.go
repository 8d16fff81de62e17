// Package datacache keeps content-addressed data (assignment inputs and
// expected outputs, data sets, submission files) on an execute host's disk:
// bounded in bytes, evicting the least recently used entry that no job is
// using, and fetching each key once however many jobs ask for it at the same
// time. A fetch holds a lock on its own key only, never on the whole cache.
package datacache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Fetch writes the files of one key into dir, a fresh empty directory
// (mode 0755: entries are readable by every user of the host). It
// should verify what it writes against the key (a content hash) and honour
// ctx. If it fails, nothing of what it wrote is kept.
type Fetch func(ctx context.Context, dir string) error

// Stats are the cache's counters, for metrics and tests.
type Stats struct {
	Entries   int   // ready entries on disk
	Bytes     int64 // their total size
	Hits      int64 // Gets served from disk (or from a fetch already running)
	Misses    int64 // Gets that started a fetch
	Evictions int64 // entries removed to stay under the budget
}

// Cache is a bounded on-disk cache. The zero value is not usable: call Open.
type Cache struct {
	root string
	max  int64

	mu      sync.Mutex
	entries map[string]*entry
	clock   uint64 // ticks on every use, orders entries by recency
	stats   Stats
}

type entry struct {
	key     string
	size    int64
	pins    int    // Handles not yet released
	lastUse uint64 // Cache.clock at the last Get or Release
	ready   chan struct{}
	err     error // set before ready closes when the fetch failed
	fetched bool  // ready and on disk
}

// Handle is one job's use of an entry: its files stay on disk until the
// handle is released.
type Handle struct {
	// Path is the directory holding the key's files. Treat it as read-only.
	Path string

	c    *Cache
	e    *entry
	once sync.Once
}

// Release ends the use of the entry; it may then be evicted. It is safe to
// call more than once.
func (h *Handle) Release() {
	h.once.Do(func() {
		h.c.mu.Lock()
		h.e.pins--
		h.e.lastUse = h.c.tick()
		doomed := h.c.evictLocked()
		h.c.mu.Unlock()
		h.c.remove(doomed)
	})
}

var validKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$`)

const tmpPrefix = ".fetch-"

// Open opens (creating it if needed) a cache in root that holds at most
// maxBytes. Entries left by an earlier process are kept, oldest first in
// line for eviction; half-written fetches are removed.
func Open(root string, maxBytes int64) (*Cache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("datacache: size budget must be positive, got %d", maxBytes)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("datacache: create %s: %w", root, err)
	}
	c := &Cache{root: root, max: maxBytes, entries: map[string]*entry{}}
	list, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("datacache: read %s: %w", root, err)
	}
	type found struct {
		key  string
		size int64
		mod  int64
	}
	var kept []found
	for _, d := range list {
		path := filepath.Join(root, d.Name())
		if strings.HasPrefix(d.Name(), tmpPrefix) || !d.IsDir() || !validKey.MatchString(d.Name()) {
			_ = os.RemoveAll(path)
			continue
		}
		size, err := dirSize(path)
		if err != nil {
			_ = os.RemoveAll(path)
			continue
		}
		info, err := d.Info()
		if err != nil {
			continue
		}
		kept = append(kept, found{key: d.Name(), size: size, mod: info.ModTime().UnixNano()})
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].mod < kept[j].mod })
	for _, f := range kept {
		e := &entry{key: f.key, size: f.size, lastUse: c.tick(), ready: make(chan struct{}), fetched: true}
		close(e.ready)
		c.entries[f.key] = e
		c.stats.Bytes += f.size
		c.stats.Entries++
	}
	c.mu.Lock()
	doomed := c.evictLocked()
	c.mu.Unlock()
	c.remove(doomed)
	return c, nil
}

// Get returns a handle on key's files, fetching them first if they are not
// on disk. Concurrent Gets of one key share one fetch; a failed fetch is
// reported to every waiter and the next Get tries again.
func (c *Cache) Get(ctx context.Context, key string, fetch Fetch) (*Handle, error) {
	if !validKey.MatchString(key) {
		return nil, fmt.Errorf("datacache: invalid key %q", key)
	}
	for {
		c.mu.Lock()
		e, ok := c.entries[key]
		if !ok {
			e = &entry{key: key, pins: 1, lastUse: c.tick(), ready: make(chan struct{})}
			c.entries[key] = e
			c.stats.Misses++
			c.mu.Unlock()
			return c.fetch(ctx, e, fetch)
		}
		e.pins++ // a pinned entry is never evicted, even while we wait
		e.lastUse = c.tick()
		c.stats.Hits++
		c.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			c.unpin(e)
			return nil, ctx.Err()
		}
		if e.err == nil {
			return &Handle{Path: c.path(key), c: c, e: e}, nil
		}
		c.unpin(e)
		// The fetch we waited for failed and its entry is gone; try our own.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Has reports whether key's files are on disk now (not merely being
// fetched).
func (c *Cache) Has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	return ok && e.fetched
}

func (c *Cache) fetch(ctx context.Context, e *entry, fetch Fetch) (*Handle, error) {
	tmp, err := os.MkdirTemp(c.root, tmpPrefix+e.key+"-")
	if err == nil {
		// MkdirTemp makes it 0700; entries are read by other users (the
		// sandbox's uids, through a read-only bind mount).
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = fetch(ctx, tmp)
	}
	var size int64
	if err == nil {
		size, err = dirSize(tmp)
	}
	if err == nil {
		_ = os.RemoveAll(c.path(e.key)) // a stale copy no entry owns
		if rerr := os.Rename(tmp, c.path(e.key)); rerr != nil {
			err = fmt.Errorf("datacache: install %s: %w", e.key, rerr)
		}
	}
	if err != nil {
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		c.mu.Lock()
		delete(c.entries, e.key)
		e.err = fmt.Errorf("fetch %s: %w", e.key, err)
		close(e.ready)
		c.mu.Unlock()
		return nil, e.err
	}
	c.mu.Lock()
	e.size = size
	e.fetched = true
	c.stats.Bytes += size
	c.stats.Entries++
	close(e.ready)
	doomed := c.evictLocked()
	c.mu.Unlock()
	c.remove(doomed)
	return &Handle{Path: c.path(e.key), c: c, e: e}, nil
}

func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	e.pins--
	doomed := c.evictLocked()
	c.mu.Unlock()
	c.remove(doomed)
}

// evictLocked drops the least recently used unpinned entries until the
// cache fits its budget, and returns the directories to delete (outside the
// lock). Pinned entries stay even if the cache is over budget: a job is using
// them.
func (c *Cache) evictLocked() []string {
	var doomed []string
	for c.stats.Bytes > c.max {
		var victim *entry
		for _, e := range c.entries {
			if !e.fetched || e.pins > 0 {
				continue
			}
			if victim == nil || e.lastUse < victim.lastUse {
				victim = e
			}
		}
		if victim == nil {
			break
		}
		// Rename first, so a Get of the same key that starts now fetches
		// into a fresh directory instead of racing the delete. If the
		// rename fails, keep the entry: over budget beats a wrong file.
		trash := filepath.Join(c.root, fmt.Sprintf("%sevicted-%s-%d", tmpPrefix, victim.key, c.tick()))
		if err := os.Rename(c.path(victim.key), trash); err != nil {
			break
		}
		delete(c.entries, victim.key)
		c.stats.Bytes -= victim.size
		c.stats.Entries--
		c.stats.Evictions++
		doomed = append(doomed, trash)
	}
	return doomed
}

func (c *Cache) remove(dirs []string) {
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

func (c *Cache) path(key string) string { return filepath.Join(c.root, key) }

func (c *Cache) tick() uint64 {
	c.clock++
	return c.clock
}

// dirSize is the total size of the regular files under dir. Anything other
// than regular files and directories (a symlink a fetch should not have
// made) is an error.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			return nil
		default:
			return errors.New("datacache: " + path + " is not a regular file")
		}
	})
	return total, err
}
