package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
)

// recordedPaths is every way the workflow can end. testdata/v2 holds one
// history of each, recorded on the real stack by the end-to-end test
// TestWorkflowPaths (GRADEFLOW_RECORD_HISTORIES=workflows/testdata/v2);
// superseded and quarantined (held, released, then graded) by
// TestSupersede and TestQuarantineAfterWorkerDeaths the same way.
var recordedPaths = []string{
	"passed", "wrong_answer", "syntax_error", "forbidden_import", "compile_error", "invalid_submission",
	"runtime_error", "time_limit_exceeded", "memory_limit_exceeded", "output_limit_exceeded",
	"config_error", "infra_error", "canceled", "webhook",
	"superseded", "quarantined",
}

// TestReplay replays histories recorded from real runs on the dev server
// against the current workflow code: those of testdata/ predate webhooks
// and cancellation (the workflow's GetVersion keeps them replaying), those
// of testdata/v2 cover every path. A change that would break the
// determinism of running workflows fails here.
func TestReplay(t *testing.T) {
	old, err := filepath.Glob("testdata/*.history.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(old) < 3 {
		t.Fatalf("found %d histories recorded before webhooks, want at least 3", len(old))
	}
	files := old
	for _, p := range recordedPaths {
		f := filepath.Join("testdata", "v2", p+".history.json")
		if _, err := os.Stat(f); err != nil {
			t.Errorf("no recorded history of path %s: %v", p, err)
			continue
		}
		files = append(files, f)
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "testdata/"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Submission, workflow.RegisterOptions{Name: contract.WorkflowName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// TestReplayRegradeAll replays the regrade-all workflow's history,
// recorded on the real stack by the end-to-end test TestRegradeAll
// (GRADEFLOW_RECORD_HISTORIES=workflows/testdata/v2), against the current
// workflow code.
func TestReplayRegradeAll(t *testing.T) {
	f := filepath.Join("testdata", "v2", "regrade_all.history.json")
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("no recorded history of the regrade-all workflow: %v", err)
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(RegradeAll, workflow.RegisterOptions{Name: contract.RegradeAllName})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
		t.Fatalf("replay %s: %v", f, err)
	}
}
