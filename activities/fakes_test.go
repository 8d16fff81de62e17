package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// fakeStore is Files and Submissions in memory, with the store's error
// conventions (store.ErrNotFound, store.ErrTooLarge).
type fakeStore struct {
	mu          sync.Mutex
	files       map[string][]byte
	subs        map[string]store.Submission
	assignments map[string]contract.Assignment
	marks       []store.Mark
	recorded    map[string]contract.Grade
	ended       int
	tests       []contract.TestResult // MarkTest calls
	fail        error                 // when set, every call fails with it (MongoDB down)
	delay       time.Duration         // when set, each file transfer takes this long (a slow link)
	claim       *store.ClaimResult    // when set, ClaimRun answers it
	// closeRun, when set, is called with each CloseRun call's number
	// (from 1) and fails it with what it returns (MongoDB unreachable).
	closeRun func(call int) error
	closes   int // CloseRun calls
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		files:       map[string][]byte{},
		subs:        map[string]store.Submission{},
		assignments: map[string]contract.Assignment{},
		recorded:    map[string]contract.Grade{},
	}
}

func (f *fakeStore) PutFile(_ context.Context, name string, data []byte) error {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.files[name] = append([]byte(nil), data...)
	return nil
}

func (f *fakeStore) ReadFile(_ context.Context, name string, max int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	data, ok := f.files[name]
	if !ok {
		return nil, fmt.Errorf("file %s: %w", name, store.ErrNotFound)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file %s: %w", name, store.ErrTooLarge)
	}
	return data, nil
}

func (f *fakeStore) ListFiles(_ context.Context, prefix string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var names []string
	for n := range f.files {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (f *fakeStore) FetchFiles(ctx context.Context, prefix string, rels []string, dir string, max int64) error {
	time.Sleep(f.delay)
	var total int64
	for _, rel := range rels {
		data, err := f.ReadFile(ctx, prefix+rel, max-total)
		if err != nil {
			return err
		}
		total += int64(len(data))
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) FetchDir(ctx context.Context, prefix, dir string, max int64) ([]string, error) {
	names, err := f.ListFiles(ctx, prefix)
	if err != nil {
		return nil, err
	}
	rels := make([]string, 0, len(names))
	for _, n := range names {
		rels = append(rels, strings.TrimPrefix(n, prefix))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return rels, f.FetchFiles(ctx, prefix, rels, dir, max)
}

func (f *fakeStore) Assignment(_ context.Context, name string) (contract.Assignment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return contract.Assignment{}, f.fail
	}
	a, ok := f.assignments[name]
	if !ok {
		return contract.Assignment{}, fmt.Errorf("assignment %s: %w", name, store.ErrNotFound)
	}
	return a, nil
}

func (f *fakeStore) Submission(_ context.Context, id string) (store.Submission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.Submission{}, f.fail
	}
	s, ok := f.subs[id]
	if !ok {
		return store.Submission{}, fmt.Errorf("submission %s: %w", id, store.ErrNotFound)
	}
	return s, nil
}

func (f *fakeStore) MarkStage(_ context.Context, _ string, m store.Mark) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.marks = append(f.marks, m)
	return nil
}

func (f *fakeStore) FetchBlob(ctx context.Context, name, dst string, max int64) (int64, error) {
	data, err := f.ReadFile(ctx, name, max)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	return int64(len(data)), os.WriteFile(dst, data, 0o644)
}

func (f *fakeStore) MarkTest(_ context.Context, _ string, t contract.TestResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tests = append(f.tests, t)
	return f.fail
}

// ClaimRun is the store's claim on the fake's submissions: refused when
// superseded, quarantined after quarantineAfter open earlier attempts. It
// marks the stage running as the store does.
func (f *fakeStore) ClaimRun(_ context.Context, id string, r contract.Run, quarantineAfter int) (store.ClaimResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.ClaimResult{}, f.fail
	}
	if f.claim != nil {
		return *f.claim, nil
	}
	sub, ok := f.subs[id]
	if !ok {
		f.marks = append(f.marks, store.Mark{Stage: contract.StageRunning, Activity: "execute", Attempt: r.Attempt, At: r.Started})
		return store.ClaimResult{Claim: store.Claimed}, nil
	}
	if sub.Status == contract.StatusSuperseded {
		return store.ClaimResult{Claim: store.ClaimSuperseded, SupersededBy: sub.SupersededBy}, nil
	}
	if sub.Runs == nil {
		sub.Runs = map[string]store.Run{}
	}
	sub.Runs[store.RunKey(r.ActivityID, r.Attempt)] = store.Run(r)
	res := store.ClaimResult{Claim: store.Claimed, Tracked: true, Runs: sub.RunList()}
	for _, run := range res.Runs {
		if run.Dead(r.ActivityID, r.Attempt) {
			res.Dead++
		}
	}
	if quarantineAfter > 0 && res.Dead >= quarantineAfter {
		sub.Status, sub.Stage = contract.StatusQuarantined, contract.StageQuarantined
		res.Claim, res.Tracked = store.ClaimQuarantined, false
	} else {
		sub.Stage = contract.StageRunning
		f.marks = append(f.marks, store.Mark{Stage: contract.StageRunning, Activity: "execute", Attempt: r.Attempt, At: r.Started})
	}
	f.subs[id] = sub
	return res, nil
}

func (f *fakeStore) CloseRun(_ context.Context, id string, r contract.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.closes++
	if f.closeRun != nil {
		if err := f.closeRun(f.closes); err != nil {
			return err
		}
	}
	if sub, ok := f.subs[id]; ok {
		sub.Runs[store.RunKey(r.ActivityID, r.Attempt)] = store.Run(r)
	}
	return nil
}

func (f *fakeStore) MarkExecuteEnded(context.Context, string, time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended++
	return f.fail
}

func (f *fakeStore) Record(_ context.Context, id string, _ store.Submission, g contract.Grade, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.recorded[id] = g
	return nil
}

// stages lists the stages marked, in order.
func (f *fakeStore) stages() []contract.Stage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []contract.Stage
	for _, m := range f.marks {
		out = append(out, m.Stage)
	}
	return out
}

// fakeSandbox runs containers by calling run, recording each spec and
// what its /job mount held.
type fakeSandbox struct {
	mu      sync.Mutex
	run     func(spec sandbox.Spec) (sandbox.Result, error)
	specs   []sandbox.Spec
	jobs    []map[string]string // per run: the files under /job
	managed []sandbox.Managed
	removed []string
}

func (s *fakeSandbox) Run(_ context.Context, spec sandbox.Spec) (sandbox.Result, error) {
	job := map[string]string{}
	for _, m := range spec.Mounts {
		if m.Target != "/job" {
			continue
		}
		_ = filepath.Walk(m.Source, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				rel, _ := filepath.Rel(m.Source, p)
				data, _ := os.ReadFile(p)
				job[filepath.ToSlash(rel)] = string(data)
			}
			return nil
		})
	}
	s.mu.Lock()
	s.specs = append(s.specs, spec)
	s.jobs = append(s.jobs, job)
	s.mu.Unlock()
	return s.run(spec)
}

func (s *fakeSandbox) ListManaged(context.Context) ([]sandbox.Managed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.managed, nil
}

func (s *fakeSandbox) Remove(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, id)
	return nil
}

// runActivity runs one of a's methods in Temporal's activity test
// environment and decodes its result into out.
func runActivity(t *testing.T, a *Activities, fn, in, out any) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return err
	}
	if out != nil {
		if err := val.Get(out); err != nil {
			t.Fatalf("decode result: %v", err)
		}
	}
	return nil
}

// wordcount is the assignment the activity tests grade against.
func wordcount() contract.Assignment {
	a := contract.Assignment{
		Name: "wc", ForbiddenModules: []string{"subprocess"}, TimeLimitSeconds: 20, Points: 100,
		InputFiles:    []string{store.InputPrefix("wc") + "in.txt"},
		ExpectedFiles: []string{store.ExpectedPrefix("wc") + "part-00000"},
		UpdatedAt:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	a.Defaults()
	return a
}

// stageWordcount stores the wordcount assignment with its input in st,
// and submission s1's mapper and reducer, and returns the assignment and
// the submission's file names.
func stageWordcount(st *fakeStore) (contract.Assignment, []string) {
	asg := wordcount()
	st.assignments["wc"] = asg
	st.files[store.InputPrefix("wc")+"in.txt"] = []byte("a b a\n")
	files := []string{"mapper.py", "reducer.py"}
	for _, f := range files {
		st.files[store.SubmissionFile("s1", f)] = []byte("print()\n")
	}
	return asg, files
}

// stageSubmission stores submission s1 of assignment wc, by ada, with
// files (name to body) in st.
func stageSubmission(st *fakeStore, files map[string]string) {
	var names []string
	for name, body := range files {
		st.files[store.SubmissionFile("s1", name)] = []byte(body)
		names = append(names, name)
	}
	st.subs["s1"] = store.Submission{ID: "s1", Assignment: "wc", Student: "ada", Files: names}
}

// failureOf classifies an activity's error: the student outcome of a
// student failure, "config" for a configuration failure, "retry" for an
// infrastructure failure, "" for none.
func failureOf(err error) string {
	if err == nil {
		return ""
	}
	if g, ok := contract.AsStudentFailure(err); ok {
		return string(g.Outcome)
	}
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == contract.ConfigFailure:
		return "config"
	case errors.As(err, &appErr) && appErr.NonRetryable():
		return "final " + appErr.Type()
	}
	return "retry"
}
