package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gradeflow/gradeflow/contract"
)

// jobHandoff passes a submission's fetched files from its sanity step to
// its execute step when both run on the same host, sparing the execute step
// a second download from GridFS. The files are moved, not shared: whichever
// step takes them owns them. Only the newest few are kept, so a queue that
// drains on other hosts cannot fill this one's disk.
type jobHandoff struct {
	mu    sync.Mutex
	dirs  map[string]string // submission ID → directory
	order []string
}

const handoffKeep = 64

func (h *jobHandoff) dir(a *Activities, id string) string {
	return filepath.Join(a.Config.WorkDir, "handoff", id)
}

// keep moves src into the hand-off area for id; it reports whether it did.
func (h *jobHandoff) keep(a *Activities, id, src string) bool {
	dst := h.dir(a, id)
	_ = os.RemoveAll(dst)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false
	}
	if err := os.Rename(src, dst); err != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dirs == nil {
		h.dirs = map[string]string{}
	}
	h.dirs[id] = dst
	h.order = append(h.order, id)
	for len(h.order) > handoffKeep {
		old := h.order[0]
		h.order = h.order[1:]
		if d, ok := h.dirs[old]; ok {
			delete(h.dirs, old)
			_ = os.RemoveAll(d)
		}
	}
	return true
}

// take moves id's files to dst, reporting whether there were any.
func (h *jobHandoff) take(id, dst string) bool {
	h.mu.Lock()
	src, ok := h.dirs[id]
	delete(h.dirs, id)
	h.mu.Unlock()
	if !ok {
		return false
	}
	if err := os.Rename(src, dst); err != nil {
		_ = os.RemoveAll(src)
		return false
	}
	return true
}

// expectedCache keeps the expected output of the assignments being graded,
// per version of each assignment, so that comparing does not download it
// for every submission.
type expectedCache struct {
	mu      sync.Mutex
	entries map[string][]byte // assignment name@version → expected output
}

const expectedKeep = 16

func (c *expectedCache) get(ctx context.Context, a *Activities, cfg contract.Assignment) ([]byte, error) {
	key := fmt.Sprintf("%s@%d", cfg.Name, cfg.UpdatedAt.UnixMilli())
	c.mu.Lock()
	data, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return data, nil
	}
	data, err := a.concat(ctx, cfg.ExpectedFiles, a.Config.MaxExpected)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= expectedKeep {
		c.entries = map[string][]byte{}
	}
	c.entries[key] = data
	return data, nil
}
