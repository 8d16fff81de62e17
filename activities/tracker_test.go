package activities

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// TestExecuteClaim runs the execute step's claim through each way it can
// go: a tracked run closed with its worker and host, a superseded or
// quarantined submission declined without a container.
func TestExecuteClaim(t *testing.T) {
	okResult := `{"ok":true,"kind":"streaming","exit_code":0}`
	dead := contract.Run{ActivityID: "11", Attempt: 1, Worker: "9@h0", Host: "h0", Started: time.Now()}
	tests := []struct {
		name        string
		status      contract.Status
		claim       *store.ClaimResult
		wantFailure string
		wantRun     bool // a container ran
		wantEnd     contract.RunEnd
	}{
		{name: "tracked run", status: contract.StatusPending, wantRun: true, wantEnd: contract.RunCompleted},
		{name: "superseded: declined", status: contract.StatusSuperseded, wantFailure: "final " + contract.Superseded},
		{name: "quarantined: declined", claim: &store.ClaimResult{Claim: store.ClaimQuarantined, Dead: 3, Runs: []contract.Run{dead, dead, dead}},
			wantFailure: "final " + contract.Quarantined},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			asg, files := stageWordcount(st)
			st.subs["s1"] = store.Submission{ID: "s1", Status: tc.status, SupersededBy: "s2", Stage: contract.StageQueued}
			st.claim = tc.claim
			sb := &fakeSandbox{run: func(spec sandbox.Spec) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, map[string]string{"./output/part-00000": "a\t2\n"})}, nil
			}}
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg, Worker: "42@exec-host", Host: "exec-host"}
			plan := contract.Plan{
				Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
				Config:  asg, Runtime: contract.RuntimeStreaming, Files: files,
			}
			var exec contract.Execution
			err := runActivity(t, a, a.Execute, plan, &exec)
			if got := failureOf(err); got != tc.wantFailure {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.wantFailure)
			}
			if (len(sb.specs) == 1) != tc.wantRun {
				t.Fatalf("%d containers, want one: %v", len(sb.specs), tc.wantRun)
			}
			if tc.claim != nil {
				var appErr *temporal.ApplicationError
				var runs []contract.Run
				if !errors.As(err, &appErr) || appErr.Details(&runs) != nil || len(runs) != 3 || runs[0].Worker != "9@h0" {
					t.Errorf("quarantine details %+v, want the dead runs", runs)
				}
			}
			if !tc.wantRun {
				return
			}
			runs := st.subs["s1"].RunList()
			if len(runs) != 1 || len(exec.Runs) != 1 {
				t.Fatalf("tracker %+v, result %+v: want one run each", runs, exec.Runs)
			}
			r := runs[0]
			if r.Worker != "42@exec-host" || r.Host != "exec-host" || r.Attempt != 1 || r.Ended == nil || r.End != tc.wantEnd ||
				exec.Runs[0].Worker != r.Worker || exec.Runs[0].End != r.End || exec.Runs[0].Ended == nil {
				t.Errorf("run %+v (result %+v), want closed %s by 42@exec-host", r, exec.Runs[0], tc.wantEnd)
			}
		})
	}
}

// TestRunEnd maps an attempt's error to how its run ended.
func TestRunEnd(t *testing.T) {
	tests := []struct {
		err  error
		want contract.RunEnd
	}{
		{nil, contract.RunCompleted},
		{contract.NewStudentFailure(contract.Grade{Outcome: contract.OutcomeTimeLimit}), contract.RunStudent},
		{temporal.NewCanceledError(), contract.RunCanceled},
		{errors.New("docker: connection refused"), contract.RunFailed},
	}
	for _, tc := range tests {
		if got := runEnd(tc.err); got != tc.want {
			t.Errorf("runEnd(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
