package activities

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// fakeQueue is the execute queue: the IDs queued, earliest first.
type fakeQueue struct {
	mu   sync.Mutex
	st   *fakeStore
	next []string
}

func (q *fakeQueue) QueuedNext(_ context.Context, limit int) ([]store.Submission, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []store.Submission
	base := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for i, id := range q.next[:min(limit, len(q.next))] {
		s, err := q.st.Submission(context.Background(), id)
		if err != nil {
			return nil, err
		}
		if s.Times.Queued == nil { // queued in the order listed
			at := base.Add(time.Duration(i) * time.Second)
			s.Times.Queued = &at
		}
		s.Stage = contract.StageQueued
		out = append(out, s)
	}
	return out, nil
}

func (q *fakeQueue) set(ids ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next = ids
}

// prefetchFixture is an execute host with a store holding the wordcount
// assignment (single-test form), queued streaming submissions s1…s3 and a
// jar submission j1.
func prefetchFixture(t *testing.T) (*Activities, *fakeStore, *fakeQueue, *fakeSandbox) {
	t.Helper()
	st := newFakeStore()
	asg := wordcount()
	asg.Runtimes = []string{contract.RuntimeStreaming, contract.RuntimeJar}
	st.assignments["wc"] = asg
	st.files[store.InputPrefix("wc")+"in.txt"] = []byte("a b a\n")
	for _, id := range []string{"s1", "s2", "s3"} {
		st.subs[id] = store.Submission{ID: id, Assignment: "wc", Stage: contract.StageQueued, Files: []string{"mapper.py", "reducer.py"}}
		st.files[store.SubmissionFile(id, "mapper.py")] = []byte("# mapper of " + id + "\n")
		st.files[store.SubmissionFile(id, "reducer.py")] = []byte("# reducer of " + id + "\n")
	}
	st.subs["j1"] = store.Submission{ID: "j1", Assignment: "wc", Stage: contract.StageQueued, Files: []string{"Main.java"}}
	st.files[store.ArtifactFile("j1", "job.jar")] = []byte("PK jar of j1")
	sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{Stdout: bundleResult(t, `{"ok":true,"exit_code":0}`, map[string]string{"./output/part-00000": "a\t2\n"})}, nil
	}}
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	q := &fakeQueue{st: st}
	a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg}
	a.prefetch.init(filepath.Join(cfg.WorkDir, "prefetch"), 1<<20, 8, 0)
	return a, st, q, sb
}

func planOf(id string, runtime string, files ...string) contract.Plan {
	p := contract.Plan{
		Request: contract.Request{SubmissionID: id, Assignment: "wc", Student: "ada", WorkflowID: "submission-" + id},
		Config:  wordcount(), Runtime: runtime, Files: files,
	}
	if runtime == contract.RuntimeJar {
		p.Jar = store.ArtifactFile(id, "job.jar")
		p.Config.MainClass = "Main"
	}
	return p
}

// prefetched lists the submissions with a finished entry.
func prefetched(a *Activities) []string {
	a.prefetch.mu.Lock()
	defer a.prefetch.mu.Unlock()
	var ids []string
	for id, e := range a.prefetch.entries {
		if e.ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestPrefetchServesExecute prefetches queued submissions, then takes the
// store's copies away: the execute steps run on the prefetched files and
// the warmed input, and each entry is gone once used.
func TestPrefetchServesExecute(t *testing.T) {
	a, st, q, sb := prefetchFixture(t)
	q.set("s1", "j1", "s2")
	if err := a.prefetchRound(context.Background(), q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"j1", "s1", "s2"}) {
		t.Fatalf("prefetched %v, want j1 s1 s2", got)
	}
	st.mu.Lock()
	for name := range st.files {
		delete(st.files, name) // a fetch from the store now fails
	}
	st.mu.Unlock()

	for _, p := range []contract.Plan{
		planOf("s1", contract.RuntimeStreaming, "mapper.py", "reducer.py"),
		planOf("j1", contract.RuntimeJar, "Main.java"),
	} {
		var exec contract.Execution
		if err := runActivity(t, a, a.Execute, p, &exec); err != nil {
			t.Fatalf("%s: %v", p.SubmissionID, err)
		}
	}
	want := []map[string]string{
		{"mapper.py": "# mapper of s1\n", "reducer.py": "# reducer of s1\n"},
		{"job.jar": "PK jar of j1"},
	}
	if len(sb.jobs) != 2 || !maps.Equal(sb.jobs[0], want[0]) || !maps.Equal(sb.jobs[1], want[1]) {
		t.Errorf("jobs ran with %v, want %v", sb.jobs, want)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s2"}) {
		t.Errorf("left %v, want s2", got)
	}
	for _, id := range []string{"s1", "j1"} {
		if _, err := os.Stat(a.prefetch.dir(id)); !os.IsNotExist(err) {
			t.Errorf("%s: prefetch dir left behind (%v)", id, err)
		}
	}
}

// TestPrefetchNeverTrustsAlteredFiles changes prefetched files on disk in
// several ways: the execute step then fetches from the store.
func TestPrefetchNeverTrustsAlteredFiles(t *testing.T) {
	tests := []struct {
		name  string
		alter func(dir string) error
	}{
		{"truncated", func(dir string) error { return os.Truncate(filepath.Join(dir, "mapper.py"), 3) }},
		{"same size, other bytes", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "mapper.py"), []byte("# mapper of XX\n"), 0o644)
		}},
		{"missing", func(dir string) error { return os.Remove(filepath.Join(dir, "reducer.py")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, q, sb := prefetchFixture(t)
			q.set("s1")
			if err := a.prefetchRound(context.Background(), q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			if err := tt.alter(filepath.Join(a.prefetch.dir("s1"), "job")); err != nil {
				t.Fatal(err)
			}
			if err := runActivity(t, a, a.Execute, planOf("s1", contract.RuntimeStreaming, "mapper.py", "reducer.py"), nil); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"mapper.py": "# mapper of s1\n", "reducer.py": "# reducer of s1\n"}
			if len(sb.jobs) != 1 || !maps.Equal(sb.jobs[0], want) {
				t.Errorf("job ran with %v, want the store's %v", sb.jobs, want)
			}
		})
	}
}

// TestPrefetchFollowsTheQueue drops the entries of submissions that left
// the next K (taken by another host) and keeps within the byte budget.
func TestPrefetchFollowsTheQueue(t *testing.T) {
	a, _, q, _ := prefetchFixture(t)
	ctx := context.Background()
	q.set("s1", "s2")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	q.set("s2", "s3")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s2", "s3"}) {
		t.Errorf("prefetched %v, want s2 s3", got)
	}
	if _, err := os.Stat(a.prefetch.dir("s1")); !os.IsNotExist(err) {
		t.Errorf("s1's files left behind (%v)", err)
	}
	// K bounds the count.
	q.set("s1", "s2", "s3")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 1}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("with K=1 prefetched %v, want s1", got)
	}
	// Bytes bound the total: each streaming submission here is 31 bytes.
	a.prefetch.clear()
	a.prefetch.init(a.prefetch.root, 40, 8, 0)
	q.set("s1", "s2", "s3")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("with a 40-byte budget prefetched %v, want s1", got)
	}
	a.prefetch.mu.Lock()
	bytes := a.prefetch.bytes
	a.prefetch.mu.Unlock()
	if bytes > 40 {
		t.Errorf("%d bytes kept, over the budget of 40", bytes)
	}
	// The one that did not fit stays a marker, without files, while there
	// is no room, and is fetched once there is.
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	a.prefetch.mu.Lock()
	marker := a.prefetch.entries["s2"]
	a.prefetch.mu.Unlock()
	if marker == nil || !marker.over || marker.ok {
		t.Fatalf("s2's entry %+v, want an over-budget marker", marker)
	}
	if _, err := os.Stat(a.prefetch.dir("s2")); !os.IsNotExist(err) {
		t.Errorf("s2's files kept over the budget (%v)", err)
	}
	if _, ok := a.prefetch.take(ctx, "s1"); !ok {
		t.Fatal("s1 not prefetched")
	}
	q.set("s2", "s3")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s2"}) {
		t.Errorf("with room again prefetched %v, want s2", got)
	}
}

// TestPrefetchOutlivesTheStart keeps an entry through a round that no
// longer lists its submission: its execute step marks it running before it
// takes the files, and a round in between must not drop them. The count
// bound still holds.
func TestPrefetchOutlivesTheStart(t *testing.T) {
	a, st, q, sb := prefetchFixture(t)
	ctx := context.Background()
	a.prefetch.init(a.prefetch.root, 1<<20, 2, time.Hour)
	q.set("s1")
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	q.set("s2", "s3") // s1 is running now
	if err := a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if got := prefetched(a); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Fatalf("prefetched %v, want s1 (in its grace) and s2 (two entries at most)", got)
	}
	st.mu.Lock()
	delete(st.files, store.SubmissionFile("s1", "mapper.py"))
	st.mu.Unlock()
	if err := runActivity(t, a, a.Execute, planOf("s1", contract.RuntimeStreaming, "mapper.py", "reducer.py"), nil); err != nil {
		t.Fatal(err)
	}
	if len(sb.jobs) != 1 || sb.jobs[0]["mapper.py"] != "# mapper of s1\n" {
		t.Errorf("job ran with %v, want s1's prefetched files", sb.jobs)
	}
}

// TestPrefetchTakeWaitsForItsFetch starts an execute step while its
// submission's files are still being prefetched over a slow link: the step
// waits for that fetch rather than starting another.
func TestPrefetchTakeWaitsForItsFetch(t *testing.T) {
	a, st, q, _ := prefetchFixture(t)
	st.delay = 200 * time.Millisecond
	q.set("s1")
	ctx := context.Background()
	round := make(chan error, 1)
	go func() { round <- a.prefetchRound(ctx, q, PrefetchConfig{Count: 8}, zap.NewNop()) }()
	waitUntil := time.Now().Add(5 * time.Second)
	for {
		a.prefetch.mu.Lock()
		_, reserved := a.prefetch.entries["s1"]
		a.prefetch.mu.Unlock()
		if reserved || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	jobDir := filepath.Join(t.TempDir(), "job")
	if !a.usePrefetched(ctx, planOf("s1", contract.RuntimeStreaming, "mapper.py", "reducer.py"), jobDir) {
		t.Fatal("the step did not get the files being prefetched")
	}
	if data, err := os.ReadFile(filepath.Join(jobDir, "mapper.py")); err != nil || string(data) != "# mapper of s1\n" {
		t.Errorf("mapper.py: %q %v", data, err)
	}
	if err := <-round; err != nil {
		t.Fatal(err)
	}
}

// TestPrefetchDispatchOrder: the prefetcher fetches the first K in the
// order the server dispatches, not the first K queued. Each queued
// submission is written student+n, in queue order; "R" ones are regrades
// of another assignment.
func TestPrefetchDispatchOrder(t *testing.T) {
	tests := []struct {
		name   string
		mode   dispatch.Mode
		count  int
		queued string
		want   string // sorted
	}{
		{"regrades queued earlier wait for live ones", dispatch.Fair, 2, "R1 R2 R3 R4 A1 B1", "A1 B1"},
		{"regrades queued earlier wait for live ones, FIFO", dispatch.FIFO, 2, "R1 R2 R3 R4 A1 B1", "A1 B1"},
		{"regrades fill what live work leaves", dispatch.Fair, 3, "R1 R2 A1 B1", "A1 B1 R1"},
		{"a heavy resubmitter gets one slot per pass", dispatch.Fair, 4, "H1 H2 H3 H4 H5 A1 B1 C1", "A1 B1 C1 H1"},
		{"second pass", dispatch.Fair, 6, "H1 H2 H3 H4 H5 A1 B1 C1 A2", "A1 A2 B1 C1 H1 H2"},
		{"without fairness, first come first served", dispatch.FIFO, 4, "H1 H2 H3 H4 H5 A1 B1 C1", "H1 H2 H3 H4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, st, q, _ := prefetchFixture(t)
			ids := strings.Fields(tt.queued)
			at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
			for i, id := range ids {
				queued := at.Add(time.Duration(i) * time.Second)
				sub := store.Submission{ID: id, Assignment: "wc", Student: id[:1], Stage: contract.StageQueued,
					Files: []string{"mapper.py", "reducer.py"}, Times: store.Times{Submitted: &queued, Queued: &queued}}
				if id[0] == 'R' {
					sub.Lane, sub.Student, sub.Assignment = contract.LaneRegrade, "someone", "wc"
				}
				st.subs[id] = sub
				st.files[store.SubmissionFile(id, "mapper.py")] = []byte("# mapper\n")
				st.files[store.SubmissionFile(id, "reducer.py")] = []byte("# reducer\n")
			}
			q.set(ids...)
			if err := a.prefetchRound(context.Background(), q, PrefetchConfig{Count: tt.count, Dispatch: tt.mode}, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(prefetched(a), " "); got != tt.want {
				t.Errorf("prefetched %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPrefetchCandidates: the candidate set is bounded, and never smaller
// than K.
func TestPrefetchCandidates(t *testing.T) {
	for _, tt := range []struct {
		cfg  PrefetchConfig
		want int
	}{
		{PrefetchConfig{Count: 1}, 64},
		{PrefetchConfig{Count: 16}, 128},
		{PrefetchConfig{Count: 8, Candidates: 4}, 8},
		{PrefetchConfig{Count: 8, Candidates: 20}, 20},
	} {
		if got := tt.cfg.candidates(); got != tt.want {
			t.Errorf("%+v: %d candidates, want %d", tt.cfg, got, tt.want)
		}
	}
}
