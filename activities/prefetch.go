package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/store"
)

// Queue is the execute queue as the store sees it, for prefetching.
type Queue interface {
	// QueuedNext returns up to limit queued submissions, the live lane
	// first, each lane earliest queued first, with their students, lanes
	// and queue times.
	QueuedNext(ctx context.Context, limit int) ([]store.Submission, error)
}

// PrefetchConfig is how an execute host keeps the next queued submissions'
// files ready.
type PrefetchConfig struct {
	Count    int           // submissions kept ready (the next K to be dispatched); 0 turns prefetching off
	MaxBytes int64         // bytes of prefetched files kept on the host
	Every    time.Duration // how often the queue is looked at
	// Dispatch is how the Temporal server orders the queue
	// (GRADEFLOW_FAIRNESS): the next K are the first K in its order.
	Dispatch dispatch.Mode
	// Candidates bounds the queued submissions read each round, the set
	// the dispatch model orders; 0: DefaultCandidates(Count).
	Candidates int
}

// DefaultCandidates is how many queued submissions a prefetcher keeping
// count ready reads each round: enough that a few students' long runs of
// resubmissions do not hide the first submissions of the others.
func DefaultCandidates(count int) int {
	return max(64, 8*count)
}

func (c PrefetchConfig) candidates() int {
	if c.Candidates > 0 {
		return max(c.Candidates, c.Count)
	}
	return DefaultCandidates(c.Count)
}

// Prefetcher keeps the files of the next Config.Count submissions the
// Temporal server will dispatch from the execute queue in an execute host's
// prefetch area, and warms the host's input cache with their assignments'
// input data. It is meant for execute hosts far from the store: the execute
// step of a prefetched submission finds its files on disk instead of
// waiting for the network. Each round it reads a bounded set of queued
// submissions (live lane first, earliest queued first) and orders them as
// the server dispatches (package dispatch: priority, then the fair
// matcher's passes per student, then arrival). That order is a forecast
// (other hosts take jobs too, and later submissions can still go ahead):
// entries that leave the next K are dropped, and an execute step whose
// files were not prefetched fetches them as before.
type Prefetcher struct {
	Activities *Activities // the execute steps that use the prefetched files
	Queue      Queue
	Config     PrefetchConfig
	Log        *zap.Logger
}

// Run prefetches until ctx ends, then removes what it kept. Run one per
// worker process, from the goroutine that owns the process's lifetime.
func (p *Prefetcher) Run(ctx context.Context) {
	a := p.Activities
	if p.Config.Count <= 0 || p.Queue == nil {
		return
	}
	every := p.Config.Every
	if every <= 0 {
		every = time.Second
	}
	// An entry outlives its submission's leaving the queue by a grace: the
	// execute step that takes it marks the submission running first, and
	// a round in between must not drop the files it is about to use.
	grace := max(prefetchGrace, 3*every)
	a.prefetch.init(filepath.Join(a.Config.WorkDir, "prefetch"), p.Config.MaxBytes, 2*p.Config.Count, grace)
	defer a.prefetch.clear()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := a.prefetchRound(ctx, p.Queue, p.Config, p.Log); err != nil && ctx.Err() == nil {
			p.Log.Warn("prefetch", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// prefetchGrace is how long an entry is kept after its submission was
// last seen among the next K queued.
const prefetchGrace = 15 * time.Second

// prefetchTimeout bounds one submission's prefetch.
const prefetchTimeout = time.Minute

// prefetchRound looks at the next cfg.Count submissions to be dispatched
// once, drops the entries of those no longer among them (after the grace)
// and fetches the missing ones in dispatch order, stopping at the byte
// budget.
func (a *Activities) prefetchRound(ctx context.Context, q Queue, cfg PrefetchConfig, log *zap.Logger) error {
	p := &a.prefetch
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	queued, err := q.QueuedNext(qctx, cfg.candidates())
	cancel()
	if err != nil {
		return err
	}
	next := nextDispatched(cfg.Dispatch, queued, cfg.Count)
	ids := make([]string, len(next))
	for i, s := range next {
		ids[i] = s.ID
	}
	p.keepOnly(ids, time.Now())
	log.Debug("prefetch round", zap.Strings("queued", ids))
	configs := map[string]contract.Assignment{} // one read per assignment per round
	for _, sub := range next {
		if ctx.Err() != nil {
			return nil
		}
		if a.jobs.has(sub.ID) || !p.reserve(sub.ID) {
			continue // handed over by this host's sanity step, kept already, or no room
		}
		cfg, ok := configs[sub.Assignment]
		if !ok {
			if cfg, err = a.Submissions.Assignment(ctx, sub.Assignment); err != nil {
				p.fail(sub.ID)
				return err
			}
			cfg.Defaults()
			configs[sub.Assignment] = cfg
		}
		start := time.Now()
		// Bounded, so that a stalled link cannot hold an execute step
		// that waits for this fetch.
		fctx, cancel := context.WithTimeout(ctx, prefetchTimeout)
		size, err := a.prefetchOne(fctx, sub, cfg)
		cancel()
		if err != nil {
			p.fail(sub.ID)
			if ctx.Err() != nil {
				return nil
			}
			// One submission's trouble (its job taken meanwhile, a missing
			// artifact) does not stop the others.
			log.Info("prefetch skipped", zap.String("submission_id", sub.ID), zap.Error(err))
			continue
		}
		if !p.done(sub.ID, size) {
			log.Debug("prefetch over budget", zap.String("submission_id", sub.ID), zap.Int64("bytes", size))
			return nil // the later ones would not fit either
		}
		log.Debug("prefetched", zap.String("submission_id", sub.ID), zap.Int64("bytes", size), zap.Duration("elapsed", time.Since(start)))
		a.warmInputs(ctx, cfg, log)
	}
	return nil
}

// nextDispatched returns the first count of the queued submissions in the
// order the server dispatches them under mode.
func nextDispatched(mode dispatch.Mode, queued []store.Submission, count int) []store.Submission {
	byID := make(map[string]store.Submission, len(queued))
	tasks := make([]dispatch.Task, 0, len(queued))
	for _, sub := range queued {
		w := store.WaitingOf(sub)
		w.Stage = contract.StageQueued // they are the queue
		byID[sub.ID] = sub
		tasks = append(tasks, dispatch.TaskOf(w))
	}
	next := dispatch.Next(mode, tasks, count)
	out := make([]store.Submission, len(next))
	for i, t := range next {
		out[i] = byID[t.ID]
	}
	return out
}

// prefetchOne fetches what sub's execute step will read into its entry's
// directory: the submission's files (streaming) or its compiled jar, and
// a manifest of their sizes and hashes. It returns their total size.
func (a *Activities) prefetchOne(ctx context.Context, sub store.Submission, cfg contract.Assignment) (int64, error) {
	p := &a.prefetch
	runtime, err := DetectRuntime(cfg, sub.Files)
	if err != nil {
		return 0, err
	}
	tmp := p.tmpDir(sub.ID)
	_ = os.RemoveAll(tmp)
	job := filepath.Join(tmp, "job")
	if err := os.MkdirAll(job, 0o755); err != nil {
		return 0, fmt.Errorf("prefetch dir: %w", err)
	}
	fail := func(err error) (int64, error) {
		_ = os.RemoveAll(tmp)
		return 0, err
	}
	rels := sub.Files
	switch runtime {
	case contract.RuntimeStreaming:
		if err := a.Files.FetchFiles(ctx, store.SubmissionPrefix(sub.ID), sub.Files, job, a.Config.MaxSubmission); err != nil {
			return fail(err)
		}
	case contract.RuntimeJar:
		jar, err := a.Files.ReadFile(ctx, store.ArtifactFile(sub.ID, "job.jar"), a.Config.MaxSubmission)
		if err != nil {
			return fail(err)
		}
		if err := os.WriteFile(filepath.Join(job, "job.jar"), jar, 0o644); err != nil {
			return fail(fmt.Errorf("prefetch jar: %w", err))
		}
		rels = []string{"job.jar"}
	}
	m, err := manifestOf(job, rels)
	if err != nil {
		return fail(err)
	}
	// Written, then named: an entry's directory is complete or absent.
	dir := p.dir(sub.ID)
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return fail(fmt.Errorf("prefetch: %w", err))
	}
	p.setManifest(sub.ID, runtime, m)
	return m.size(), nil
}

// warmInputs fetches cfg's input data into the host's input cache (and, for
// the tests form, the expected outputs the execute step scores against),
// unless it is there already. The entries are released at once: the cache
// keeps them until they are the least recently used.
func (a *Activities) warmInputs(ctx context.Context, cfg contract.Assignment, log *zap.Logger) {
	if len(cfg.Tests) == 0 {
		_, release, err := a.inputs.get(ctx, a, cfg)
		if err != nil {
			log.Info("prefetch input", zap.String("assignment", cfg.Name), zap.Error(err))
			return
		}
		release()
		return
	}
	for _, t := range cfg.Tests {
		for _, f := range t.InputFiles {
			if h, err := a.blob(ctx, f, a.Config.MaxInput); err == nil {
				h.Release()
			}
		}
		for _, f := range t.ExpectedFiles {
			if h, err := a.blob(ctx, f, a.Config.MaxExpected); err == nil {
				h.Release()
			}
		}
	}
}

// usePrefetched moves the prefetched files of plan's submission into
// jobDir, reporting whether it did. A fetch still running is waited for
// (it started earlier than a new one would). The files are checked against
// the manifest written when they were fetched (names, sizes, SHA-256) and
// against what the plan expects; anything else is dropped, and the caller
// fetches from the store as without prefetching.
func (a *Activities) usePrefetched(ctx context.Context, plan contract.Plan, jobDir string) bool {
	e, ok := a.prefetch.take(ctx, plan.SubmissionID)
	if !ok {
		return false
	}
	defer os.RemoveAll(e.dir)
	want := plan.Files
	if plan.Runtime == contract.RuntimeJar {
		want = []string{"job.jar"}
	}
	if e.runtime != plan.Runtime || !e.manifest.matches(filepath.Join(e.dir, "job"), want) {
		return false
	}
	return os.Rename(filepath.Join(e.dir, "job"), jobDir) == nil
}

// fileSum is a prefetched file's size and SHA-256.
type fileSum struct {
	size int64
	sha  string
}

// manifest is what a prefetch entry holds: relative name → sum.
type manifest map[string]fileSum

func (m manifest) size() int64 {
	var n int64
	for _, s := range m {
		n += s.size
	}
	return n
}

// manifestOf sums the files rels under dir.
func manifestOf(dir string, rels []string) (manifest, error) {
	m := make(manifest, len(rels))
	for _, rel := range rels {
		s, err := sumFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		m[rel] = s
	}
	return m, nil
}

// matches reports whether dir holds exactly the files want, each as the
// manifest has it: a partial, truncated or altered file does not match.
func (m manifest) matches(dir string, want []string) bool {
	if len(m) != len(want) {
		return false
	}
	for _, rel := range want {
		s, ok := m[rel]
		if !ok {
			return false
		}
		got, err := sumFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil || got != s {
			return false
		}
	}
	return true
}

// sumFile is the size and SHA-256 of the file at path.
func sumFile(path string) (fileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileSum{}, fmt.Errorf("sum file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fileSum{}, fmt.Errorf("sum file %s: %w", path, err)
	}
	return fileSum{size: n, sha: hex.EncodeToString(h.Sum(nil))}, nil
}

// prefetchCache is the host's prefetch area: one directory per submission
// (<root>/<id>/job), bounded by the number the prefetcher keeps (the next
// K) and by bytes. An entry leaves it when its execute step takes it, when
// its submission is no longer among the next K, or when the prefetcher
// stops.
type prefetchCache struct {
	mu         sync.Mutex
	root       string
	maxBytes   int64
	maxEntries int
	grace      time.Duration // how long an entry outlives its place in the next K
	bytes      int64
	entries    map[string]*prefetchEntry
}

type prefetchEntry struct {
	dir      string
	runtime  string
	manifest manifest
	size     int64
	ready    chan struct{} // closed once fetched or failed
	ok       bool          // fetched and within the budget
	over     bool          // fetched, but over the budget: not kept
	seen     time.Time     // when its submission was last among the next K
}

func (p *prefetchCache) init(root string, maxBytes int64, maxEntries int, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.root, p.maxBytes, p.maxEntries, p.grace, p.entries = root, maxBytes, maxEntries, grace, map[string]*prefetchEntry{}
	_ = os.RemoveAll(root) // left by an earlier process
}

func (p *prefetchCache) dir(id string) string    { return filepath.Join(p.root, id) }
func (p *prefetchCache) tmpDir(id string) string { return filepath.Join(p.root, ".tmp", id) }

// reserve claims id for a fetch, reporting false when it has an entry.
func (p *prefetchCache) reserve(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[id]; ok || p.entries == nil || len(p.entries) >= p.maxEntries {
		return false
	}
	p.entries[id] = &prefetchEntry{dir: p.dir(id), ready: make(chan struct{}), seen: time.Now()}
	return true
}

func (p *prefetchCache) setManifest(id, runtime string, m manifest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[id]; ok {
		e.runtime, e.manifest = runtime, m
	}
}

// done completes id's fetch of size bytes; over the budget, the entry is
// dropped and done reports false.
func (p *prefetchCache) done(id string, size int64) bool {
	p.mu.Lock()
	e, ok := p.entries[id]
	if !ok { // taken while fetching: take removed it
		p.mu.Unlock()
		return true
	}
	if p.bytes+size > p.maxBytes {
		// Kept as a marker, without files, so that the next rounds do not
		// fetch it again until there is room (see keepOnly).
		e.size, e.over = size, true
		close(e.ready)
		p.mu.Unlock()
		_ = os.RemoveAll(e.dir)
		return false
	}
	e.size, e.ok = size, true
	p.bytes += size
	close(e.ready)
	p.mu.Unlock()
	return true
}

// fail ends id's fetch without an entry.
func (p *prefetchCache) fail(id string) {
	p.mu.Lock()
	e, ok := p.entries[id]
	if ok {
		delete(p.entries, id)
		close(e.ready)
	}
	p.mu.Unlock()
	if ok {
		_ = os.RemoveAll(e.dir)
	}
}

// take removes id's entry and returns it once its fetch has ended, if it
// succeeded. The caller owns the entry's directory.
func (p *prefetchCache) take(ctx context.Context, id string) (*prefetchEntry, bool) {
	p.mu.Lock()
	e, ok := p.entries[id]
	p.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.entries[id]; !ok || cur != e || !e.ok {
		return nil, false
	}
	delete(p.entries, id)
	p.bytes -= e.size
	return e, true
}

// keepOnly notes that ids are the next K at now, and drops the finished
// entries of submissions not among them for longer than the grace.
func (p *prefetchCache) keepOnly(ids []string, now time.Time) {
	p.mu.Lock()
	var doomed []string
	for id, e := range p.entries {
		if e.over && p.bytes+e.size <= p.maxBytes {
			delete(p.entries, id) // room now: fetch it again
			continue
		}
		if slices.Contains(ids, id) {
			e.seen = now
			continue
		}
		if e.over && now.Sub(e.seen) >= p.grace {
			delete(p.entries, id)
			continue
		}
		if !e.ok || now.Sub(e.seen) < p.grace {
			continue // still being fetched, or perhaps being taken
		}
		delete(p.entries, id)
		p.bytes -= e.size
		doomed = append(doomed, e.dir)
	}
	p.mu.Unlock()
	for _, d := range doomed {
		_ = os.RemoveAll(d)
	}
}

// clear drops every entry (the prefetcher stopping).
func (p *prefetchCache) clear() {
	p.mu.Lock()
	root := p.root
	p.entries, p.bytes = nil, 0
	p.mu.Unlock()
	_ = os.RemoveAll(root)
}

// has reports whether the sanity step on this host left id's files.
func (h *jobHandoff) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.dirs[id]
	return ok
}
