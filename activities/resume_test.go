package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
)

// twoTests stages an assignment of the tests form with tests t1 and t2,
// each on an input blob of its own, and submission s1's files.
func twoTests(st *fakeStore, corrupt bool) contract.Plan {
	asg := wordcount()
	asg.InputFiles, asg.ExpectedFiles, asg.Points = nil, nil, 20
	for _, name := range []string{"t1", "t2"} {
		body := []byte("input of " + name + "\n")
		sum := sha256.Sum256(body)
		ref := contract.FileRef{Name: "in.txt", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}
		ref.Blob = contract.BlobName(ref.SHA256)
		if corrupt {
			body = []byte("not what was stored\n")
		}
		st.files[ref.Blob] = body
		asg.Tests = append(asg.Tests, contract.TestSpec{Name: name, Points: 10, Visibility: contract.VisibilityVisible,
			InputFiles: []contract.FileRef{ref}})
	}
	st.assignments["wc"] = asg
	files := []string{"mapper.py", "reducer.py"}
	for _, f := range files {
		st.files["submissions/s1/"+f] = []byte("print()\n")
	}
	return contract.Plan{
		Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
		Config:  asg, Runtime: contract.RuntimeStreaming, Files: files,
	}
}

// runAttempt runs Execute as a retried attempt whose predecessor
// heartbeated prior.
func runAttempt(t *testing.T, a *Activities, plan contract.Plan, prior any) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if prior != nil {
		env.SetHeartbeatDetails(prior)
	}
	_, err := env.ExecuteActivity(a.Execute, plan)
	return err
}

// TestRetryKeepsFinishedTestsWhileFetching: an attempt that resumes
// after test t1 finished heartbeats that progress (never a bare phase
// name) while it fetches over a slow link, so that if it dies there too
// the next attempt still skips t1. It runs only t2.
func TestRetryKeepsFinishedTestsWhileFetching(t *testing.T) {
	st := newFakeStore()
	st.delay = 100 * time.Millisecond
	plan := twoTests(st, false)
	sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{}, errors.New("engine gone") // the worker dies here: an infrastructure error
	}}
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	cfg.HeartbeatEvery = 10 * time.Millisecond
	a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg}
	var mu sync.Mutex
	var beats []any
	a.recordHeartbeat = func(_ context.Context, details ...any) {
		mu.Lock()
		defer mu.Unlock()
		beats = append(beats, details...)
	}
	t1 := contract.TestRun{Result: contract.TestResult{Name: "t1", Passed: true, Score: 10, MaxScore: 10, Status: contract.TestPassed}}
	err := runAttempt(t, a, plan, testProgress{Done: []contract.TestRun{t1}})
	if failureOf(err) != "retry" {
		t.Fatalf("error %v (%s), want an infrastructure error", err, failureOf(err))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(beats) < 5 {
		t.Fatalf("%d heartbeats over a slow fetch, want several", len(beats))
	}
	for i, b := range beats {
		p, ok := b.(testProgress)
		if !ok || len(p.Done) != 1 || p.Done[0].Result.Name != "t1" {
			t.Fatalf("heartbeat %d is %#v: the finished test t1 is lost", i, b)
		}
	}
	if len(sb.specs) != 1 {
		t.Fatalf("%d containers, want 1", len(sb.specs))
	}
	cmd := strings.Join(sb.specs[0].Cmd, " ")
	if strings.Contains(cmd, "t1:") || !strings.Contains(cmd, "--test t2:") {
		t.Errorf("command %q: want only test t2", cmd)
	}
}

// TestCorruptBlobIsRetried: a fetched input whose content is not its
// SHA-256 is never cached nor run: an infrastructure error, retried.
func TestCorruptBlobIsRetried(t *testing.T) {
	st := newFakeStore()
	plan := twoTests(st, true)
	sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) { return sandbox.Result{}, nil }}
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg}
	err := runAttempt(t, a, plan, nil)
	if failureOf(err) != "retry" || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("error %v (%s), want a retried SHA-256 mismatch", err, failureOf(err))
	}
	if len(sb.specs) != 0 {
		t.Errorf("%d containers ran on corrupt input", len(sb.specs))
	}
}
