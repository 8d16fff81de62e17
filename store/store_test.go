//go:build stack

package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// The store's tests run against the real wire protocol: the embedded
// MongoDB-compatible server, or the MongoDB that MONGODB_URI names.
var (
	mongoURI string
	mongoDir string // the embedded server's data directory; "" for MONGODB_URI
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := stacktest.NewGroup("gradeflow-store-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer g.Stop()
	if mongoURI, err = g.Mongo(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: MongoDB-compatible server:", err)
		return 1
	}
	mongoDir = g.MongoDir
	return m.Run()
}

// openStore opens a store on a database of the test's own.
func openStore(t *testing.T) *Store {
	t.Helper()
	st, err := Open(mongoURI, "t_"+randHex(6))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.DB().Drop(ctx)
		_ = st.Close(ctx)
	})
	return st
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestPutFile checks the GridFS writes that submissions go through: files
// of every size read back through the driver, and rewriting a name
// replaces it whole, stray chunks of a failed write included.
func TestPutFile(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	const chunk = 255 * 1024
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/chunk)
		}
		return b
	}
	tests := []struct {
		name   string
		first  []byte
		second []byte // nil: written once
	}{
		{name: "empty", first: []byte{}},
		{name: "small", first: []byte("print(1)\n")},
		{name: "one chunk exactly", first: pattern(chunk)},
		{name: "chunk and a byte", first: pattern(chunk + 1)},
		{name: "several chunks", first: pattern(3*chunk + 17)},
		{name: "replace larger by smaller", first: pattern(2*chunk + 5), second: []byte("short")},
		{name: "replace smaller by larger", first: []byte("short"), second: pattern(2*chunk + 5)},
		{name: "replace by empty", first: []byte("x"), second: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "test/" + randHex(4) + "/f"
			if err := st.PutFile(ctx, name, tt.first); err != nil {
				t.Fatal(err)
			}
			want := tt.first
			if tt.second != nil {
				if err := st.PutFile(ctx, name, tt.second); err != nil {
					t.Fatal(err)
				}
				want = tt.second
			}
			got, err := st.ReadFile(ctx, name, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, want %d", len(got), len(want))
			}
			dir := t.TempDir()
			if err := st.FetchFiles(ctx, filepath.Dir(name)+"/", []string{"f"}, dir, 1<<30); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(data, want) {
				t.Errorf("fetched %d bytes (err %v), want %d", len(data), err, len(want))
			}
			if _, err := st.ReadFile(ctx, name, int64(len(want))-1); len(want) > 0 && !errors.Is(err, ErrTooLarge) {
				t.Errorf("read beyond the cap: %v, want ErrTooLarge", err)
			}
		})
	}
	t.Run("stray chunks of a failed write", func(t *testing.T) {
		name := "test/" + randHex(4) + "/f"
		if _, err := st.DB().Collection(FilesBucket+".chunks").InsertOne(ctx, bson.D{
			{Key: "_id", Value: bson.NewObjectID()}, {Key: "files_id", Value: name}, {Key: "n", Value: int32(0)},
			{Key: "data", Value: bson.Binary{Data: []byte("stale")}},
		}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutFile(ctx, name, []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		if got, err := st.ReadFile(ctx, name, 100); err != nil || string(got) != "fresh" {
			t.Errorf("read %q, %v", got, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := st.ReadFile(ctx, "test/none", 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("read of a missing file: %v, want ErrNotFound", err)
		}
		if err := st.DeleteFile(ctx, "test/none"); err != nil {
			t.Errorf("delete of a missing file: %v", err)
		}
	})
}

// TestSubmissionLifecycle follows a submission's document: created once,
// moved through its stages idempotently (first times and highest attempts
// win, never back from done), recorded, and deleted with its files.
func TestSubmissionLifecycle(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	sub := Submission{ID: "s1", Assignment: "wc", Student: "ada", Files: []string{"mapper.py"}, WorkflowID: contract.WorkflowID("s1")}
	if created, err := st.CreateSubmission(ctx, sub); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if created, err := st.CreateSubmission(ctx, sub); err != nil || created {
		t.Fatalf("create again: created %v, err %v; want false, nil", created, err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	marks := []Mark{
		{Stage: contract.StageSanity, Activity: "sanity", Attempt: 1, At: t0},
		{Stage: contract.StageSanity, Activity: "sanity", Attempt: 2, At: t0.Add(time.Second)}, // a retry
		{Stage: contract.StageQueued, At: t0.Add(2 * time.Second)},
		{Stage: contract.StageRunning, Activity: "execute", Attempt: 1, At: t0.Add(3 * time.Second)},
	}
	for _, m := range marks {
		if err := st.MarkStage(ctx, "s1", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkExecuteEnded(ctx, "s1", t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := st.Submission(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage != contract.StageRunning || got.Status != contract.StatusPending || got.Attempts["sanity"] != 2 || got.Attempts["execute"] != 1 ||
		!got.Times.SanityStarted.Equal(t0) || !got.Times.Queued.Equal(t0.Add(2*time.Second)) || !got.Times.ExecuteEnded.Equal(t0.Add(5*time.Second)) {
		t.Errorf("after marks: %+v", got)
	}
	if w, err := st.WaitingSubmissions(ctx, contract.StageQueued, contract.StageSubmitted, contract.StageSanity); err != nil || len(w) != 0 {
		t.Errorf("a running submission waits: %+v, %v", w, err)
	}

	g := contract.Grade{
		Status: contract.StatusGraded, Outcome: contract.OutcomeWrongAnswer, Score: 40, MaxScore: 100, Feedback: "2 of 5",
		Tests:      []contract.TestResult{{Name: "output", Score: 40, MaxScore: 100, Expected: 5, Matched: 2, Got: 3, Diff: "- a"}},
		RunSeconds: 2.5,
	}
	for range 2 { // a retried record step writes the same document
		if err := st.Record(ctx, "s1", Submission{}, g, t0.Add(6*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// A zombie attempt of an earlier step never moves a done submission back.
	if err := st.MarkStage(ctx, "s1", Mark{Stage: contract.StageRunning, Activity: "execute", Attempt: 3, At: t0.Add(7 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, err = st.Submission(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage != contract.StageDone || got.Status != contract.StatusGraded || got.Outcome != contract.OutcomeWrongAnswer ||
		got.Score != 40 || len(got.Tests) != 1 || got.Tests[0].Matched != 2 || got.RunSeconds != 2.5 ||
		got.Student != "ada" || !got.Times.Completed.Equal(t0.Add(6*time.Second)) || got.Attempts["execute"] != 1 {
		t.Errorf("after record: %+v", got)
	}

	// A workflow started without the intake still gets a document.
	if err := st.Record(ctx, "hand", Submission{Assignment: "wc", Student: "bob", WorkflowID: "submission-hand"}, g, t0); err != nil {
		t.Fatal(err)
	}
	if hand, err := st.Submission(ctx, "hand"); err != nil || hand.Student != "bob" || hand.Stage != contract.StageDone {
		t.Errorf("upserted record: %+v, %v", hand, err)
	}

	if err := st.PutFile(ctx, SubmissionFile("s1", "mapper.py"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteSubmission(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Submission(ctx, "s1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted submission: %v, want ErrNotFound", err)
	}
	if _, err := st.ReadFile(ctx, SubmissionFile("s1", "mapper.py"), 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("file of a deleted submission: %v, want ErrNotFound", err)
	}
}

// TestAssignments: the document maps to the contract's assignment and
// back, with its file names sorted and its version set.
func TestAssignments(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	for _, name := range []string{"in/a.txt", "in/b.txt"} {
		if err := st.PutFile(ctx, InputPrefix("wc")+name, []byte("a b\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutFile(ctx, ExpectedPrefix("wc")+"part-00000", []byte("a\t1\n")); err != nil {
		t.Fatal(err)
	}
	in := contract.Assignment{Name: "wc", Title: "Word count", ForbiddenModules: []string{"socket"}, Combiner: "c.py", WebhookURL: "https://h/x",
		InputFiles:    []string{InputPrefix("wc") + "in/b.txt", InputPrefix("wc") + "in/a.txt"},
		ExpectedFiles: []string{ExpectedPrefix("wc") + "part-00000"}}
	if err := st.PutAssignment(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := st.Assignment(ctx, "wc")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Defaults()
	want.InputFiles = []string{InputPrefix("wc") + "in/a.txt", InputPrefix("wc") + "in/b.txt"}
	want.ExpectedFiles = []string{ExpectedPrefix("wc") + "part-00000"}
	want.UpdatedAt = got.UpdatedAt
	if got.UpdatedAt.IsZero() || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("stored\n%+v\nwant\n%+v", got, want)
	}
	if err := st.PutAssignment(ctx, contract.Assignment{Name: "Bad Name"}); err == nil {
		t.Error("an invalid assignment was stored")
	}
	if _, err := st.Assignment(ctx, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing assignment: %v", err)
	}
	all, err := st.Assignments(ctx)
	if err != nil || len(all) != 1 || all[0].Name != "wc" {
		t.Errorf("assignments %+v, %v", all, err)
	}
}

// TestQueriesAndRegrades covers the list, queue and regrade queries.
func TestQueriesAndRegrades(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	var docs []any
	for i, id := range []string{"a", "b", "c", "d"} {
		docs = append(docs, Submission{ID: id, Assignment: "wc", Student: "ada", Stage: contract.StageQueued, Status: contract.StatusPending,
			Times: Times{Submitted: at(time.Duration(i) * time.Second), Queued: at(time.Duration(i) * time.Second)}})
	}
	docs = append(docs, Submission{ID: "a-r1", Assignment: "wc", Student: "ada", Stage: contract.StageDone, Times: Times{Submitted: at(time.Minute)}},
		Submission{ID: "a-r3", Assignment: "wc", Student: "ada", Stage: contract.StageDone, Times: Times{Submitted: at(time.Minute)}},
		Submission{ID: "ab-r9", Assignment: "wc", Student: "bob", Stage: contract.StageDone, Times: Times{Submitted: at(time.Minute)}})
	if _, err := st.DB().Collection(SubmissionsCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	page, err := st.ListSubmissions(ctx, SubmissionFilter{Student: "ada"}, PageCursor{}, 3)
	if err != nil || len(page) != 3 || page[0].ID != "a-r3" || page[1].ID != "a-r1" || page[2].ID != "d" {
		t.Fatalf("first page %v, %v", ids(page), err)
	}
	last := page[2]
	page, err = st.ListSubmissions(ctx, SubmissionFilter{Student: "ada"}, PageCursor{Submitted: *last.Times.Submitted, ID: last.ID}, 10)
	if err != nil || !slices.Equal(ids(page), []string{"c", "b", "a"}) {
		t.Fatalf("second page %v, %v", ids(page), err)
	}
	waiting, err := st.WaitingSubmissions(ctx, contract.StageQueued)
	if err != nil || len(waiting) != 4 {
		t.Fatalf("queued %+v, %v; want 4", waiting, err)
	}
	slices.SortFunc(waiting, func(a, b Waiting) int { return a.Queued.Compare(b.Queued) })
	for i, w := range waiting {
		if want := []string{"a", "b", "c", "d"}[i]; w.ID != want || w.Student != "ada" || w.Assignment != "wc" || !w.Queued.Equal(*at(time.Duration(i) * time.Second)) {
			t.Errorf("waiting %d: %+v, want %s of ada queued at %ds", i, w, want, i)
		}
	}
	// Regrade numbers come from a counter on the document: 1, 2, ... (the
	// intake skips a number taken by a regrade made before the counter).
	for want := 1; want <= 3; want++ {
		if n, err := st.NextRegrade(ctx, "a"); err != nil || n != want {
			t.Errorf("regrade number %d of a: %d, %v", want, n, err)
		}
	}
	if _, err := st.NextRegrade(ctx, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("regrade of a missing submission: %v", err)
	}
	// A regrade is created with its link, in the one insert.
	if _, err := st.CreateSubmission(ctx, Submission{ID: "a-r4", Assignment: "wc", Student: "ada", RegradeOf: "a"}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Submission(ctx, "a-r4"); err != nil || r.RegradeOf != "a" {
		t.Errorf("regrade a-r4 links to %q, %v; want a", r.RegradeOf, err)
	}
	if a, err := st.Submission(ctx, "a"); err != nil || a.Regrades != 3 {
		t.Errorf("a reads %d regrades reserved, %v; want 3", a.Regrades, err)
	}
}

// TestRegradeRunMarks: a planned run is created once (a second plan under
// the same ID leaves the first), and the workflow's marks come back on its
// items: the first start time, or why an item can never start.
func TestRegradeRunMarks(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	run := RegradeRun{ID: "rg-m", Assignment: "wc", Scope: "all", CreatedAt: now, WorkflowID: "regrade-rg-m",
		Items: []RegradeItem{{From: "a", To: "a-r1", Student: "ada"}, {From: "b", To: "b-r1", Student: "bob"}, {From: "c", To: "c-r2", Student: "cy"}}}
	if created, err := st.CreateRegradeRun(ctx, run); err != nil || !created {
		t.Fatalf("create: %v, %v", created, err)
	}
	other := run
	other.Items = []RegradeItem{{From: "a", To: "a-r9"}}
	if created, err := st.CreateRegradeRun(ctx, other); err != nil || created {
		t.Fatalf("second plan under the same ID: created %v, %v", created, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.MarkRegradeItem(ctx, "rg-m", 0, now, ""))
	must(st.MarkRegradeItem(ctx, "rg-m", 0, now.Add(time.Minute), "")) // a retried mark
	must(st.MarkRegradeItem(ctx, "rg-m", 2, now, "submission c: not found"))
	got, err := st.RegradeRunByID(ctx, "rg-m")
	must(err)
	if len(got.Items) != 3 || got.Items[0].To != "a-r1" || got.WorkflowID != "regrade-rg-m" {
		t.Fatalf("run %+v", got)
	}
	if s := got.Items[0].StartedAt; s == nil || !s.Equal(now) {
		t.Errorf("item 0 started %v, want %v", s, now)
	}
	if got.Items[1].StartedAt != nil || got.Items[1].Error != "" {
		t.Errorf("item 1 %+v, want planned", got.Items[1])
	}
	if got.Items[2].StartedAt != nil || got.Items[2].Error != "submission c: not found" {
		t.Errorf("item 2 %+v, want refused", got.Items[2])
	}
	must(st.DeleteRegradeRun(ctx, "rg-m"))
	if _, err := st.RegradeRunByID(ctx, "rg-m"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted run: %v", err)
	}
}

func ids(subs []Submission) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.ID
	}
	return out
}

// TestQueuedNext: the prefetch candidates come live lane first (no lane
// or "live"), then the regrade lane, each earliest queued first, with the
// fields the dispatch model reads.
func TestQueuedNext(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(s int) *time.Time { x := now.Add(time.Duration(s) * time.Second); return &x }
	var docs []any
	for i, d := range []struct{ id, lane string }{{"r1", contract.LaneRegrade}, {"r2", contract.LaneRegrade}, {"l1", ""}, {"s1", contract.LaneLive}, {"l2", ""}} {
		docs = append(docs, Submission{ID: d.id, Assignment: "wc", Student: "s-" + d.id, Lane: d.lane, Files: []string{"m.py"},
			Stage: contract.StageQueued, Status: contract.StatusPending, Times: Times{Submitted: at(i - 10), Queued: at(i)}})
	}
	docs = append(docs, Submission{ID: "run", Assignment: "wc", Student: "x", Stage: contract.StageRunning, Times: Times{Submitted: at(-20), Queued: at(-20)}})
	if _, err := st.DB().Collection(SubmissionsCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	got, err := st.QueuedNext(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"l1", "l2", "s1", "r1"}; !slices.Equal(ids(got), want) {
		t.Fatalf("QueuedNext = %v, want %v", ids(got), want)
	}
	w := WaitingOf(got[3])
	if w.Student != "s-r1" || w.Lane != contract.LaneRegrade || w.Stage != contract.StageQueued || !w.Queued.Equal(*at(0)) ||
		!w.Submitted.Equal(*at(-10)) || !slices.Equal(got[3].Files, []string{"m.py"}) {
		t.Errorf("candidate %+v (files %v), want r1's fields", w, got[3].Files)
	}
}

// TestTakeTokenShared: two API replicas share the buckets: tokens handed
// out concurrently through two stores on one database never exceed the
// burst.
func TestTakeTokenShared(t *testing.T) {
	st := openStore(t)
	other, err := Open(mongoURI, st.DB().Name())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close(context.Background()) }()
	limit := RateLimit{PerMinute: 1, Burst: 5}
	now := time.Now()
	results := make(chan bool, 20)
	for i := range 20 {
		s := st
		if i%2 == 1 {
			s = other
		}
		go func() {
			ok, _, err := s.TakeToken(context.Background(), "shared", limit, now)
			if err != nil {
				t.Error(err)
			}
			results <- ok
		}()
	}
	granted := 0
	for range 20 {
		if <-results {
			granted++
		}
	}
	if granted != 5 {
		t.Errorf("%d tokens granted, want the burst of 5", granted)
	}
	ok, wait, err := st.TakeToken(context.Background(), "shared", limit, now)
	if err != nil || ok || wait <= 0 {
		t.Errorf("beyond the burst: ok %v wait %s err %v; want refused with a wait", ok, wait, err)
	}
}

// TestWorkers: heartbeats count the fresh execute slots only.
func TestWorkers(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now()
	beats := []struct {
		beat WorkerBeat
		at   time.Time
	}{
		{beat: WorkerBeat{Identity: "w1", Queue: "execute", Slots: 3}, at: now},
		{beat: WorkerBeat{Identity: "w2", Queue: "execute", Slots: 2}, at: now.Add(-time.Hour)},
		{beat: WorkerBeat{Identity: "w1", Queue: "sanity", Slots: 8}, at: now},
	}
	for _, b := range beats {
		if err := st.HeartbeatWorker(ctx, b.beat, b.at); err != nil {
			t.Fatal(err)
		}
	}
	if slots, workers, err := st.ExecutionSlots(ctx, time.Minute); err != nil || slots != 3 || workers != 1 {
		t.Errorf("slots %d workers %d, %v; want 3, 1", slots, workers, err)
	}
	if err := st.RemoveWorker(ctx, "w1", "execute"); err != nil {
		t.Fatal(err)
	}
	if slots, _, err := st.ExecutionSlots(ctx, time.Minute); err != nil || slots != 0 {
		t.Errorf("slots after withdrawal %d, %v", slots, err)
	}
}

// TestPutFiles: several files in one go, and again over the same names
// (a retried upload), which replaces their content.
func TestPutFiles(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	p := "test/" + randHex(4) + "/"
	first := map[string][]byte{p + "a.py": []byte("a1"), p + "lib/b.py": bytes.Repeat([]byte("b"), 600<<10), p + "empty": nil}
	if err := st.PutFiles(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := map[string][]byte{p + "a.py": []byte("a2"), p + "lib/b.py": []byte("b2"), p + "c.py": []byte("c2")}
	if err := st.PutFiles(ctx, second); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{p + "a.py": []byte("a2"), p + "lib/b.py": []byte("b2"), p + "c.py": []byte("c2"), p + "empty": nil}
	for name, data := range want {
		got, err := st.ReadFile(ctx, name, 1<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %q, %v; want %q", name, got, err, data)
		}
	}
}
