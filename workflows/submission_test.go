package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/store"
)

var a *activities.Activities

func testPlan() activities.Plan {
	return activities.Plan{
		Request: activities.Request{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"},
		Config:  store.Assignment{Name: "wordcount", TimeLimitSeconds: 20, Points: 100},
		Runtime: store.RuntimeStreaming,
		Files:   []string{"mapper.py", "reducer.py"},
	}
}

func student(outcome store.Outcome, feedback string) error {
	return temporal.NewNonRetryableApplicationError(string(outcome), activities.StudentFailure, nil,
		activities.Verdict{Outcome: outcome, Feedback: feedback, MaxScore: 100})
}

// TestSubmission runs the workflow with mocked activities through each way
// a grading can end, and checks the result and what gets recorded.
func TestSubmission(t *testing.T) {
	passed := activities.Grade{Outcome: store.OutcomePassed, Score: 100, MaxScore: 100, Feedback: "all 3 output lines match"}
	tests := []struct {
		name        string
		sanityErr   error
		executeErr  error
		grade       activities.Grade
		wantStatus  store.Status
		wantOutcome store.Outcome
		wantScore   float64
		wantErr     bool
		wantExecute int // times Execute is called
	}{
		{name: "passed", grade: passed, wantStatus: store.StatusGraded, wantOutcome: store.OutcomePassed, wantScore: 100, wantExecute: 1},
		{name: "wrong answer", grade: activities.Grade{Outcome: store.OutcomeWrongAnswer, Score: 40, MaxScore: 100, Feedback: "2 of 5 expected lines match"},
			wantStatus: store.StatusGraded, wantOutcome: store.OutcomeWrongAnswer, wantScore: 40, wantExecute: 1},
		{name: "syntax error stops before execute", sanityErr: student(store.OutcomeSyntaxError, "mapper.py:3: invalid syntax"),
			wantStatus: store.StatusGraded, wantOutcome: store.OutcomeSyntaxError, wantExecute: 0},
		{name: "forbidden import", sanityErr: student(store.OutcomeForbiddenImport, "forbidden module 'subprocess'"),
			wantStatus: store.StatusGraded, wantOutcome: store.OutcomeForbiddenImport, wantExecute: 0},
		{name: "time limit is scored, not retried", executeErr: student(store.OutcomeTimeLimit, "stopped after 20s"),
			wantStatus: store.StatusGraded, wantOutcome: store.OutcomeTimeLimit, wantExecute: 1},
		{name: "infrastructure failure retries, then is an error not charged to the student",
			executeErr: errors.New("docker: connection refused"),
			wantStatus: store.StatusError, wantErr: true, wantExecute: 3},
		{name: "broken assignment is not retried",
			sanityErr:  temporal.NewNonRetryableApplicationError("assignment missing", activities.ConfigFailure, nil),
			wantStatus: store.StatusError, wantErr: true, wantExecute: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(Submission, workflow.RegisterOptions{Name: WorkflowName})
			env.OnActivity(a.Sanity, mock.Anything, mock.Anything).Return(testPlan(), tc.sanityErr)
			executions := 0
			env.OnActivity(a.Execute, mock.Anything, mock.Anything).Return(
				func(_ context.Context, _ activities.Plan) (activities.Execution, error) {
					executions++
					return activities.Execution{Outputs: []string{"outputs/s1/part-00000"}, RunSeconds: 4.2}, tc.executeErr
				}).Maybe()
			env.OnActivity(a.Compare, mock.Anything, mock.Anything).Return(tc.grade, nil).Maybe()
			var recorded store.Final
			env.OnActivity(a.Record, mock.Anything, mock.Anything).Return(
				func(_ context.Context, req activities.RecordRequest) (activities.Recorded, error) {
					recorded = req.Final
					return activities.Recorded{Webhook: true}, nil
				}).Once()
			env.OnActivity(a.Webhook, mock.Anything, mock.Anything).Return(nil).Once()

			env.ExecuteWorkflow(WorkflowName, Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada", ExecuteAttempts: 3})

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
			if tc.wantOutcome != "" && tc.wantOutcome != store.OutcomePassed && recorded.Feedback == "" {
				t.Error("a failed outcome was recorded without feedback")
			}
			if executions != tc.wantExecute {
				t.Errorf("Execute called %d times, want %d", executions, tc.wantExecute)
			}
			if !tc.wantErr {
				var res Result
				if err := env.GetWorkflowResult(&res); err != nil {
					t.Fatal(err)
				}
				if res.Outcome != tc.wantOutcome || res.Score != tc.wantScore || res.MaxScore != 100 {
					t.Errorf("result %+v", res)
				}
			}
			q, err := env.QueryWorkflow(QueryStage)
			if err != nil {
				t.Fatal(err)
			}
			var info StageInfo
			if err := q.Get(&info); err != nil {
				t.Fatal(err)
			}
			if info.Stage != store.StageDone {
				t.Errorf("stage after completion %q, want done", info.Stage)
			}
			env.AssertExpectations(t)
		})
	}
}

// TestSubmissionStageQuery queries the stage while the job runs, after the
// execute activity has signalled that it started.
func TestSubmissionStageQuery(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Submission, workflow.RegisterOptions{Name: WorkflowName})
	env.OnActivity(a.Sanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(a.Execute, mock.Anything, mock.Anything).After(time.Minute).Return(activities.Execution{}, nil)
	env.OnActivity(a.Compare, mock.Anything, mock.Anything).Return(activities.Grade{Outcome: store.OutcomePassed, Score: 100, MaxScore: 100}, nil)
	env.OnActivity(a.Record, mock.Anything, mock.Anything).Return(activities.Recorded{}, nil)

	stageAt := func() store.Stage {
		q, err := env.QueryWorkflow(QueryStage)
		if err != nil {
			t.Fatal(err)
		}
		var info StageInfo
		if err := q.Get(&info); err != nil {
			t.Fatal(err)
		}
		return info.Stage
	}
	var queued, running, late store.Stage
	env.RegisterDelayedCallback(func() { queued = stageAt() }, 10*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalStage, store.StageRunning)
	}, 20*time.Second)
	env.RegisterDelayedCallback(func() { running = stageAt() }, 30*time.Second)
	env.RegisterDelayedCallback(func() {
		// A stale signal must not move the stage back.
		env.SignalWorkflow(SignalStage, store.StageQueued)
	}, 40*time.Second)
	env.RegisterDelayedCallback(func() { late = stageAt() }, 50*time.Second)
	env.ExecuteWorkflow(WorkflowName, Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if queued != store.StageQueued || running != store.StageRunning || late != store.StageRunning {
		t.Fatalf("stages %q, %q, %q; want queued, running, running", queued, running, late)
	}
}

// TestSubmissionWebhookFailureDoesNotFailGrading: a receiver that refuses
// the delivery is logged and given up on; the grade stands.
func TestSubmissionWebhookFailureDoesNotFailGrading(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Submission, workflow.RegisterOptions{Name: WorkflowName})
	env.OnActivity(a.Sanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(a.Execute, mock.Anything, mock.Anything).Return(activities.Execution{}, nil)
	env.OnActivity(a.Compare, mock.Anything, mock.Anything).Return(activities.Grade{Outcome: store.OutcomePassed, Score: 100, MaxScore: 100}, nil)
	env.OnActivity(a.Record, mock.Anything, mock.Anything).Return(activities.Recorded{Webhook: true}, nil)
	env.OnActivity(a.Webhook, mock.Anything, mock.Anything).Return(
		temporal.NewNonRetryableApplicationError("410 Gone", activities.WebhookRejected, nil)).Once()
	env.ExecuteWorkflow(WorkflowName, Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("a failed webhook failed the grading: %v", err)
	}
	var res Result
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != store.OutcomePassed {
		t.Fatalf("result %+v, %v", res, err)
	}
	env.AssertExpectations(t)
}
