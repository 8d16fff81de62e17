package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
)

// newTestEnv returns a test environment with the workflow and, under
// their contract names, stand-ins for its activities that tests mock.
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Submission, workflow.RegisterOptions{Name: contract.WorkflowName})
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(context.Context, contract.Request) (contract.Plan, error) { panic("not mocked") }, contract.ActivitySanity)
	reg(func(context.Context, contract.Plan) (contract.Execution, error) { panic("not mocked") }, contract.ActivityExecute)
	reg(func(context.Context, contract.CompareInput) (contract.Grade, error) { panic("not mocked") }, contract.ActivityCompare)
	reg(func(context.Context, contract.RecordRequest) (contract.Recorded, error) { panic("not mocked") }, contract.ActivityRecord)
	reg(func(context.Context, contract.WebhookRequest) error { panic("not mocked") }, contract.ActivityWebhook)
	return env
}

func testPlan() contract.Plan {
	return contract.Plan{
		Request: contract.Request{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"},
		Config:  contract.Assignment{Name: "wordcount", TimeLimitSeconds: 20, Points: 100},
		Runtime: contract.RuntimeStreaming,
		Files:   []string{"mapper.py", "reducer.py"},
	}
}

func student(outcome contract.Outcome, feedback string) error {
	return temporal.NewNonRetryableApplicationError(string(outcome), contract.StudentFailure, nil,
		contract.Grade{Outcome: outcome, Feedback: feedback, MaxScore: 100})
}

// TestSubmission runs the workflow with mocked activities through each way
// a grading can end, and checks the result and what gets recorded.
func TestSubmission(t *testing.T) {
	passed := contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100, Feedback: "all 3 output lines match"}
	tests := []struct {
		name        string
		sanityErr   error
		executeErr  error
		grade       contract.Grade
		compareErr  error
		wantStatus  contract.Status
		wantOutcome contract.Outcome
		wantScore   float64
		wantErr     bool
		wantExecute int // times Execute is called
		wantCompare int // times Compare is called
	}{
		{name: "passed", grade: passed, wantStatus: contract.StatusGraded, wantOutcome: contract.OutcomePassed, wantScore: 100, wantExecute: 1, wantCompare: 1},
		{name: "wrong answer", grade: contract.Grade{Outcome: contract.OutcomeWrongAnswer, Score: 40, MaxScore: 100, Feedback: "2 of 5 expected lines match"},
			wantStatus: contract.StatusGraded, wantOutcome: contract.OutcomeWrongAnswer, wantScore: 40, wantExecute: 1, wantCompare: 1},
		{name: "compare that keeps failing is bounded, then an error not charged to the student",
			compareErr: errors.New("gridfs: read output: connection reset"),
			wantStatus: contract.StatusError, wantErr: true, wantExecute: 1, wantCompare: compareAttempts},
		{name: "syntax error stops before execute", sanityErr: student(contract.OutcomeSyntaxError, "mapper.py:3: invalid syntax"),
			wantStatus: contract.StatusGraded, wantOutcome: contract.OutcomeSyntaxError, wantExecute: 0},
		{name: "forbidden import", sanityErr: student(contract.OutcomeForbiddenImport, "forbidden module 'subprocess'"),
			wantStatus: contract.StatusGraded, wantOutcome: contract.OutcomeForbiddenImport, wantExecute: 0},
		{name: "time limit is scored, not retried", executeErr: student(contract.OutcomeTimeLimit, "stopped after 20s"),
			wantStatus: contract.StatusGraded, wantOutcome: contract.OutcomeTimeLimit, wantExecute: 1},
		{name: "infrastructure failure retries, then is an error not charged to the student",
			executeErr: errors.New("docker: connection refused"),
			wantStatus: contract.StatusError, wantErr: true, wantExecute: 3},
		{name: "broken assignment is not retried",
			sanityErr:  temporal.NewNonRetryableApplicationError("assignment missing", contract.ConfigFailure, nil),
			wantStatus: contract.StatusError, wantErr: true, wantExecute: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv()
			env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), tc.sanityErr)
			executions := 0
			env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).Return(
				func(_ context.Context, _ contract.Plan) (contract.Execution, error) {
					executions++
					return contract.Execution{Outputs: []string{"outputs/s1/part-00000"}, RunSeconds: 4.2}, tc.executeErr
				}).Maybe()
			compares := 0
			env.OnActivity(contract.ActivityCompare, mock.Anything, mock.Anything).Return(
				func(_ context.Context, _ contract.CompareInput) (contract.Grade, error) {
					compares++
					return tc.grade, tc.compareErr
				}).Maybe()
			var recorded contract.Grade
			env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(
				func(_ context.Context, req contract.RecordRequest) (contract.Recorded, error) {
					recorded = req.Final
					return contract.Recorded{Webhook: true}, nil
				}).Once()
			env.OnActivity(contract.ActivityWebhook, mock.Anything, mock.Anything).Return(nil).Once()

			env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada", ExecuteAttempts: 3})

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			err := env.GetWorkflowError()
			if (err != nil) != tc.wantErr {
				t.Fatalf("workflow error %v, want error %v", err, tc.wantErr)
			}
			if recorded.Status != tc.wantStatus || recorded.Outcome != tc.wantOutcome || recorded.Score != tc.wantScore {
				t.Errorf("recorded %s/%s/%g, want %s/%s/%g", recorded.Status, recorded.Outcome, recorded.Score, tc.wantStatus, tc.wantOutcome, tc.wantScore)
			}
			if tc.wantOutcome != "" && tc.wantOutcome != contract.OutcomePassed && recorded.Feedback == "" {
				t.Error("a failed outcome was recorded without feedback")
			}
			if executions != tc.wantExecute {
				t.Errorf("Execute called %d times, want %d", executions, tc.wantExecute)
			}
			if compares != tc.wantCompare {
				t.Errorf("Compare called %d times, want %d", compares, tc.wantCompare)
			}
			if !tc.wantErr {
				var res contract.Result
				if err := env.GetWorkflowResult(&res); err != nil {
					t.Fatal(err)
				}
				if res.Outcome != tc.wantOutcome || res.Score != tc.wantScore || res.MaxScore != 100 {
					t.Errorf("result %+v", res)
				}
			}
			q, err := env.QueryWorkflow(contract.QueryStage)
			if err != nil {
				t.Fatal(err)
			}
			var info contract.StageInfo
			if err := q.Get(&info); err != nil {
				t.Fatal(err)
			}
			if info.Stage != contract.StageDone {
				t.Errorf("stage after completion %q, want done", info.Stage)
			}
			env.AssertExpectations(t)
		})
	}
}

// TestSubmissionStageQuery queries the stage while the job runs, after the
// execute activity has signalled that it started.
func TestSubmissionStageQuery(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).After(time.Minute).Return(contract.Execution{}, nil)
	env.OnActivity(contract.ActivityCompare, mock.Anything, mock.Anything).Return(contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}, nil)
	env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(contract.Recorded{}, nil)

	stageAt := func() contract.Stage {
		q, err := env.QueryWorkflow(contract.QueryStage)
		if err != nil {
			t.Fatal(err)
		}
		var info contract.StageInfo
		if err := q.Get(&info); err != nil {
			t.Fatal(err)
		}
		return info.Stage
	}
	var queued, running, late contract.Stage
	env.RegisterDelayedCallback(func() { queued = stageAt() }, 10*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalStage, contract.StageRunning)
	}, 20*time.Second)
	env.RegisterDelayedCallback(func() { running = stageAt() }, 30*time.Second)
	env.RegisterDelayedCallback(func() {
		// A stale signal must not move the stage back.
		env.SignalWorkflow(contract.SignalStage, contract.StageQueued)
	}, 40*time.Second)
	env.RegisterDelayedCallback(func() { late = stageAt() }, 50*time.Second)
	env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if queued != contract.StageQueued || running != contract.StageRunning || late != contract.StageRunning {
		t.Fatalf("stages %q, %q, %q; want queued, running, running", queued, running, late)
	}
}

// TestSubmissionWebhookFailureDoesNotFailGrading: a receiver that refuses
// the delivery is logged and given up on; the grade stands.
func TestSubmissionWebhookFailureDoesNotFailGrading(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).Return(contract.Execution{}, nil)
	env.OnActivity(contract.ActivityCompare, mock.Anything, mock.Anything).Return(contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}, nil)
	env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(contract.Recorded{Webhook: true}, nil)
	env.OnActivity(contract.ActivityWebhook, mock.Anything, mock.Anything).Return(
		temporal.NewNonRetryableApplicationError("410 Gone", contract.WebhookRejected, nil)).Once()
	env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("a failed webhook failed the grading: %v", err)
	}
	var res contract.Result
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != contract.OutcomePassed {
		t.Fatalf("result %+v, %v", res, err)
	}
	env.AssertExpectations(t)
}

// TestSubmissionCancelDuringRecord cancels the workflow as its record
// step runs: the step is not canceled with it, so the grade compare
// produced is recorded and the read model never stays at a running stage.
func TestSubmissionCancelDuringRecord(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).Return(
		contract.Execution{Outputs: []string{"outputs/s1/a1/part-00000"}, RunSeconds: 3}, nil)
	env.OnActivity(contract.ActivityCompare, mock.Anything, mock.Anything).Return(
		contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}, nil)
	var recorded []contract.Grade
	env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req contract.RecordRequest) (contract.Recorded, error) {
			env.CancelWorkflow()
			recorded = append(recorded, req.Final)
			return contract.Recorded{}, nil
		})

	env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})

	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if len(recorded) != 1 {
		t.Fatalf("recorded %d times, want once: %+v", len(recorded), recorded)
	}
	if got := recorded[0]; got.Status != contract.StatusGraded || got.Outcome != contract.OutcomePassed {
		t.Errorf("recorded %s/%s, want the grade compare produced", got.Status, got.Outcome)
	}
	var res contract.Result
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("workflow result: %v (the record step was canceled with the workflow)", err)
	}
	if res.Outcome != contract.OutcomePassed {
		t.Errorf("result %+v", res)
	}
}
