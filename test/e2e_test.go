//go:build stack

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// stk is the stack every test in this package shares; executeWorker is the
// one process serving the execute queue (the kill test replaces it).
var (
	stk           *stack
	executeWorker *proc
	sanityWorker  *proc // serves sanity and grade, with warm checkers
	executeMu     sync.Mutex
)

const exampleDir = "examples/wordcount"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	s, err := startStack(stackOptions{persistentTemporal: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot start the stack:", err)
		return 1
	}
	defer s.stop()
	stk = s
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if sanityWorker, err = s.startWorker(ctx, "worker-sanity-grade", "sanity,grade"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if executeWorker, err = s.startWorker(ctx, "worker-execute", "execute"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := s.starter(ctx, "assignment", exampleDir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// expectation is an example's documented outcome (examples/*/outcomes.json).
type expectation struct {
	Outcome contract.Outcome `json:"outcome"`
	Score   *float64         `json:"score"`
}

func loadExpectations(t testing.TB) map[string]expectation {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(stk.root, exampleDir, "outcomes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]expectation
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// readFiles reads a submission directory as the portal would upload it.
func readFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := stacktest.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// submit submits the files of dir and returns the run.
func submit(t testing.TB, ctx context.Context, id, dir string) contract.Result {
	t.Helper()
	return grade(t, ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "e2e-student", Files: readFiles(t, dir)})
}

// grade submits sub through the intake, which must create it, and waits
// for its workflow's result.
func grade(t testing.TB, ctx context.Context, sub intake.Submission) contract.Result {
	t.Helper()
	got, err := stk.intake().Submit(ctx, sub)
	if err != nil {
		t.Fatalf("submit %s: %v", sub.ID, err)
	}
	if !got.Created {
		t.Fatalf("submit %s: not created", sub.ID)
	}
	var res contract.Result
	if err := got.Run.Get(ctx, &res); err != nil {
		t.Fatalf("grade %s: %v", sub.ID, err)
	}
	return res
}

// TestExamples grades every bundled example and checks it reaches its
// documented outcome, in the workflow result and in the read model.
func TestExamples(t *testing.T) {
	want := loadExpectations(t)
	if len(want) < 6 {
		t.Fatalf("outcomes.json documents %d examples, want at least 6", len(want))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel) // after the parallel subtests, unlike defer
	batch := randHex(3)
	for name, exp := range want {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id := name + "-" + batch
			res := submit(t, ctx, id, filepath.Join(stk.root, exampleDir, "submissions", name))
			if res.Status != contract.StatusGraded || res.Outcome != exp.Outcome {
				t.Fatalf("got %s/%s, want graded/%s; feedback:\n%s", res.Status, res.Outcome, exp.Outcome, res.Feedback)
			}
			if exp.Score != nil && res.Score != *exp.Score {
				t.Errorf("score %g, want %g", res.Score, *exp.Score)
			}
			if res.MaxScore != 100 {
				t.Errorf("max score %g, want 100", res.MaxScore)
			}
			if res.Outcome != contract.OutcomePassed && res.Feedback == "" {
				t.Errorf("no feedback for %s", res.Outcome)
			}
			sub, err := stk.store.Submission(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sub.Stage != contract.StageDone || sub.Status != res.Status || sub.Outcome != res.Outcome || sub.Score != res.Score {
				t.Errorf("read model %s/%s/%s/%g disagrees with result %s/%s/%g", sub.Stage, sub.Status, sub.Outcome, sub.Score, res.Status, res.Outcome, res.Score)
			}
			if sub.Times.Submitted == nil || sub.Times.SanityStarted == nil || sub.Times.Completed == nil {
				t.Errorf("missing stage times: %+v", sub.Times)
			}
			if sub.Attempts["sanity"] != 1 {
				t.Errorf("sanity attempts %d, want 1", sub.Attempts["sanity"])
			}
			ranJob := res.Outcome == contract.OutcomePassed || res.Outcome == contract.OutcomeWrongAnswer || res.Outcome == contract.OutcomeTimeLimit
			if ranJob && (sub.Times.Queued == nil || sub.Times.ExecuteStarted == nil || sub.Attempts["execute"] != 1) {
				t.Errorf("execute not recorded: times %+v attempts %v", sub.Times, sub.Attempts)
			}
			// Every score of a job that ran names what graded it.
			if ranJob && (sub.Grader == nil || sub.Grader.Image != stk.image || sub.Grader.ImageID == "" || sub.Grader.AssignmentRevision == 0) {
				t.Errorf("grader version %+v, want the revision, %s and its digest", sub.Grader, stk.image)
			}
		})
	}
}

// TestDuplicateSubmissionGradedOnce submits the same ID twice, the second
// time while the first is still grading: one workflow run, one record.
func TestDuplicateSubmissionGradedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := "dup-" + randHex(4)
	files := readFiles(t, filepath.Join(stk.root, exampleDir, "submissions", "python-correct"))
	sub := intake.Submission{ID: id, Assignment: "wordcount", Student: "dup", Files: files}
	first, err := stk.intake().Submit(ctx, sub)
	if err != nil || !first.Created {
		t.Fatalf("first submit: created=%v err=%v", first.Created, err)
	}
	second, err := stk.intake().Submit(ctx, sub)
	if err != nil || second.Created {
		t.Fatalf("second submit: created=%v err=%v, want existing", second.Created, err)
	}
	run1 := first.Run
	if run1.GetRunID() != second.Run.GetRunID() {
		t.Fatalf("second submit started run %s, first was %s", second.Run.GetRunID(), run1.GetRunID())
	}
	var res contract.Result
	if err := run1.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	// After completion too: the ID is never reused.
	third, err := stk.intake().Submit(ctx, sub)
	if err != nil || third.Created || third.Run.GetRunID() != run1.GetRunID() {
		t.Fatalf("submit after completion: created=%v err=%v", third.Created, err)
	}
	if n := countCompleted(t, ctx, id, "Record"); n != 1 {
		t.Fatalf("Record completed %d times, want 1", n)
	}
}

// countCompleted counts the completed activities of a type in a
// submission's workflow history.
func countCompleted(t testing.TB, ctx context.Context, id, activityType string) int {
	t.Helper()
	return len(completedResults(t, ctx, id, activityType))
}

// completedResults returns the results of the completed activities of a
// type in a submission's workflow history, in history order.
func completedResults(t testing.TB, ctx context.Context, id, activityType string) []*commonpb.Payloads {
	t.Helper()
	iter := stk.temporal.GetWorkflowHistory(ctx, contract.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	var results []*commonpb.Payloads
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == activityType {
			results = append(results, a.GetResult())
		}
	}
	return results
}
