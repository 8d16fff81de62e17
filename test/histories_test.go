//go:build stack

package test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
)

// HistoryPaths names every way the submission workflow can end, as the
// files of workflows/testdata/v2 are named; TestWorkflowPaths produces
// each on the real stack.
var historyPaths = []string{
	"passed", "wrong_answer", "syntax_error", "forbidden_import", "compile_error", "invalid_submission",
	"runtime_error", "time_limit_exceeded", "memory_limit_exceeded", "output_limit_exceeded",
	"config_error", "infra_error", "canceled", "webhook", "tests_partial",
}

// TestWorkflowPaths runs the submission workflow through each of its paths
// on the real stack (real workers, containers and Hadoop), checks each
// result, and replays each recorded history against the current workflow
// code. With GRADEFLOW_RECORD_HISTORIES=DIR it also writes each history to
// DIR/<path>.history.json: that is how workflows/testdata/v2 is recorded
// (see the README's Tests section).
func TestWorkflowPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	batch := randHex(3)
	examples := filepath.Join(stk.root, exampleDir, "submissions")
	hostile := filepath.Join(stk.root, "test/testdata/hostile")

	// The webhook path grades against a copy of the assignment whose
	// receiver runs here.
	var delivered atomic.Int32
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	hooked := "wordcount-hook-" + batch
	putAssignmentCopy(t, ctx, hooked, func(a *contract.Assignment) { a.WebhookURL = rc.URL + "/hook" })

	type path struct {
		name       string
		assignment string
		files      map[string][]byte
		start      func(t *testing.T, id string) // instead of a plain submit
		wantStatus contract.Status
		wantErr    bool // the workflow fails (infrastructure or configuration)
	}
	graded := func(name string, files map[string][]byte) path {
		return path{name: name, files: files, wantStatus: contract.StatusGraded}
	}
	paths := []path{
		graded("passed", readFiles(t, filepath.Join(examples, "python-correct"))),
		graded("wrong_answer", readFiles(t, filepath.Join(examples, "python-wrong"))),
		graded("syntax_error", readFiles(t, filepath.Join(examples, "python-syntax-error"))),
		graded("forbidden_import", readFiles(t, filepath.Join(examples, "python-forbidden-import"))),
		graded("compile_error", readFiles(t, filepath.Join(examples, "java-compile-error"))),
		graded("invalid_submission", map[string][]byte{"notes.txt": []byte("no mapper here\n")}),
		graded("runtime_error", map[string][]byte{
			"mapper.py":  []byte("import sys\nfor line in sys.stdin:\n    raise ValueError('the mapper gives up')\n"),
			"reducer.py": []byte("import sys\nfor line in sys.stdin:\n    print(line, end='')\n"),
		}),
		graded("time_limit_exceeded", readFiles(t, filepath.Join(examples, "python-infinite-loop"))),
		graded("memory_limit_exceeded", map[string][]byte{
			// Writes every byte it holds, so the memory limit is reached at
			// once rather than page by page.
			"mapper.py":  []byte("import sys\nsys.stdin.read()\nhoard = []\nwhile True:\n    hoard.append(b'x' * (64 << 20))\n"),
			"reducer.py": []byte("import sys\nfor line in sys.stdin:\n    print(line, end='')\n"),
		}),
		graded("output_limit_exceeded", readFiles(t, filepath.Join(hostile, "output-flood"))),
		{name: "config_error", wantStatus: contract.StatusError, wantErr: true, start: func(t *testing.T, id string) {
			// Started by hand (as staff could from the Temporal UI) for an
			// assignment that does not exist: the intake would refuse it.
			startWorkflow(t, ctx, contract.Input{SubmissionID: id, Assignment: "no-such-assignment-" + batch, Student: "paths"})
		}},
		{name: "infra_error", wantStatus: contract.StatusError, wantErr: true, start: func(t *testing.T, id string) {
			// One execute attempt, and its worker dies: the failure is
			// infrastructure's, recorded as an error, not charged.
			executeMu.Lock()
			defer executeMu.Unlock()
			stageFiles(t, ctx, id, readFiles(t, filepath.Join(stk.root, "test/testdata/slow-correct")))
			startWorkflow(t, ctx, contract.Input{SubmissionID: id, Assignment: "wordcount", Student: "paths",
				ExecuteAttempts: 1, HeartbeatTimeout: 2 * time.Second})
			stk.waitRunning(t, ctx, id)
			executeWorker.Kill()
			w, err := stk.startWorker(ctx, "worker-execute-paths", "execute")
			if err != nil {
				t.Fatal(err)
			}
			executeWorker = w
		}},
		{name: "canceled", wantStatus: contract.StatusCanceled, wantErr: true, start: func(t *testing.T, id string) {
			submitFiles(t, ctx, id, "wordcount", readFiles(t, filepath.Join(stk.root, "test/testdata/slow-correct")))
			stk.waitRunning(t, ctx, id)
			if err := stk.temporal.CancelWorkflow(ctx, contract.WorkflowID(id), ""); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "webhook", assignment: hooked, files: readFiles(t, filepath.Join(examples, "python-correct")), wantStatus: contract.StatusGraded},
		// The tests form: five tests in one container, the third times out,
		// the others keep their scores.
		{name: "tests_partial", assignment: "topword", files: readFiles(t, filepath.Join(stk.root, topwordDir, "submissions/python-quadratic")), wantStatus: contract.StatusGraded},
	}
	putTopword(t, ctx)
	if len(paths) != len(historyPaths) {
		t.Fatalf("%d paths run, %d named", len(paths), len(historyPaths))
	}
	outDir := os.Getenv("GRADEFLOW_RECORD_HISTORIES")
	for i, p := range paths {
		if p.name != historyPaths[i] {
			t.Fatalf("path %d is %s, named %s", i, p.name, historyPaths[i])
		}
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("path-%s-%s", p.name, batch)
			if p.start != nil {
				p.start(t, id)
			} else {
				asg := p.assignment
				if asg == "" {
					asg = "wordcount"
				}
				submitFiles(t, ctx, id, asg, p.files)
			}
			var res contract.Result
			err := stk.temporal.GetWorkflow(ctx, contract.WorkflowID(id), "").Get(ctx, &res)
			if (err != nil) != p.wantErr {
				t.Fatalf("workflow error %v, want error %v", err, p.wantErr)
			}
			sub, serr := stk.store.Submission(ctx, id)
			if serr != nil {
				t.Fatal(serr)
			}
			if sub.Stage != contract.StageDone || sub.Status != p.wantStatus {
				t.Fatalf("recorded %s/%s, want done/%s (feedback %q, error %q)", sub.Stage, sub.Status, p.wantStatus, sub.Feedback, sub.ErrorDetail)
			}
			if p.wantStatus == contract.StatusGraded {
				want := contract.Outcome(p.name)
				switch p.name {
				case "webhook":
					want = contract.OutcomePassed
				case "tests_partial":
					want = contract.OutcomeTimeLimit
					if sub.Score != 80 {
						t.Errorf("tests_partial scored %g, want 80 (the tests around the timeout)", sub.Score)
					}
				}
				if sub.Outcome != want || res.Outcome != want {
					t.Fatalf("outcome %s (result %s), want %s; feedback:\n%s", sub.Outcome, res.Outcome, want, sub.Feedback)
				}
			}
			if p.name == "webhook" && delivered.Load() == 0 {
				t.Error("graded, but the webhook was not delivered")
			}
			hist := history(t, ctx, id)
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Submission, workflow.RegisterOptions{Name: contract.WorkflowName})
			if err := r.ReplayWorkflowHistory(nil, hist); err != nil {
				t.Fatalf("replay: %v", err)
			}
			if outDir != "" {
				raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(outDir, p.name+".history.json"), append(raw, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// putAssignmentCopy stores the example assignment under name, after edit
// (if not nil) has changed its configuration.
func putAssignmentCopy(t *testing.T, ctx context.Context, name string, edit func(*contract.Assignment)) {
	t.Helper()
	dir := filepath.Join(stk.root, exampleDir)
	raw, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := intake.DecodeAssignment(raw, "")
	if err != nil {
		t.Fatal(err)
	}
	a.Name = name
	if edit != nil {
		edit(&a)
	}
	if _, _, err := stk.intake().PutAssignment(ctx, intake.AssignmentUpload{
		Config: a, Input: readFiles(t, filepath.Join(dir, "input")), Expected: readFiles(t, filepath.Join(dir, "expected")),
	}); err != nil {
		t.Fatal(err)
	}
}

// submitFiles submits files through the intake.
func submitFiles(t *testing.T, ctx context.Context, id, assignment string, files map[string][]byte) {
	t.Helper()
	got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: assignment, Student: "paths", Files: files})
	if err != nil || !got.Created {
		t.Fatalf("submit %s: created %v, %v", id, got.Created, err)
	}
}

// stageFiles stores a submission of the wordcount assignment as the
// intake does, without starting its workflow.
func stageFiles(t *testing.T, ctx context.Context, id string, files map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(files))
	for name, data := range files {
		if err := stk.store.PutFile(ctx, store.SubmissionFile(id, name), data); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if _, err := stk.store.CreateSubmission(ctx, store.Submission{
		ID: id, Assignment: "wordcount", Student: "paths", Files: names, WorkflowID: contract.WorkflowID(id),
	}); err != nil {
		t.Fatal(err)
	}
}

// startWorkflow starts a submission workflow directly, with in's options.
func startWorkflow(t *testing.T, ctx context.Context, in contract.Input) client.WorkflowRun {
	t.Helper()
	run, err := stk.temporal.ExecuteWorkflow(ctx, contract.StartOptions(in), contract.WorkflowName, in)
	if err != nil {
		t.Fatalf("start %s: %v", in.SubmissionID, err)
	}
	return run
}

// history fetches a closed submission workflow's whole history.
func history(t *testing.T, ctx context.Context, id string) *historypb.History {
	t.Helper()
	return historyOf(t, ctx, contract.WorkflowID(id))
}

// historyOf fetches the whole history of the closed workflow workflowID.
func historyOf(t *testing.T, ctx context.Context, workflowID string) *historypb.History {
	t.Helper()
	iter := stk.temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}
