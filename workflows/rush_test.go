package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/gradeflow/gradeflow/contract"
)

// TestSubmissionSuperseded supersedes a submission three ways: the
// execute step declines it (it lost the claim to a newer submission), the
// intake's signal arrives while it waits in the execute queue, or while
// its sanity check runs. Each is recorded superseded, never scored, and
// never compared.
func TestSubmissionSuperseded(t *testing.T) {
	tests := []struct {
		name        string
		signalAt    time.Duration // 0: no signal
		sanityTakes time.Duration
		executeErr  error
		wantExecute int
	}{
		{name: "execute declines", executeErr: contract.NewSuperseded("s1", "s2"), wantExecute: 1},
		{name: "signal while queued: canceled before it runs", signalAt: 5 * time.Second, wantExecute: 0},
		{name: "signal during sanity", signalAt: 2 * time.Second, sanityTakes: 10 * time.Second, wantExecute: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv()
			env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).After(tc.sanityTakes).Return(testPlan(), nil)
			executions := 0
			queued := time.Duration(0)
			if tc.signalAt > 0 {
				queued = time.Hour // waits in the queue, until canceled
			}
			env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).After(queued).Return(
				func(ctx context.Context, _ contract.Plan) (contract.Execution, error) {
					executions++
					return contract.Execution{}, tc.executeErr
				}).Maybe()
			var recorded contract.Grade
			env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(
				func(_ context.Context, req contract.RecordRequest) (contract.Recorded, error) {
					recorded = req.Final
					return contract.Recorded{}, nil
				}).Once()
			if tc.signalAt > 0 {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalSupersede, "s2") }, tc.signalAt)
			}
			env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
			if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
				t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
			}
			if recorded.Status != contract.StatusSuperseded || recorded.Score != 0 || recorded.Outcome != "" {
				t.Errorf("recorded %+v, want superseded without a score", recorded)
			}
			if executions != tc.wantExecute {
				t.Errorf("Execute called %d times, want %d", executions, tc.wantExecute)
			}
			env.AssertExpectations(t)
		})
	}
}

// TestSubmissionQuarantine has the execute step decline a submission whose
// attempts killed their workers: the workflow holds it in stage
// quarantined (query and search attribute) and schedules nothing until
// the release signal, then runs execute as a new step and grades it.
func TestSubmissionQuarantine(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	var executeAt []time.Time
	env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ contract.Plan) (contract.Execution, error) {
			executeAt = append(executeAt, env.Now())
			if len(executeAt) == 1 {
				return contract.Execution{}, contract.NewQuarantined("s1", 3, nil)
			}
			return contract.Execution{RunSeconds: 2}, nil
		})
	env.OnActivity(contract.ActivityCompare, mock.Anything, mock.Anything).Return(
		contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}, nil).Once()
	var recorded contract.Grade
	env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req contract.RecordRequest) (contract.Recorded, error) {
			recorded = req.Final
			return contract.Recorded{}, nil
		}).Once()
	var held contract.StageInfo
	env.RegisterDelayedCallback(func() {
		q, err := env.QueryWorkflow(contract.QueryStage)
		if err == nil {
			_ = q.Get(&held)
		}
		env.SignalWorkflow(contract.SignalRelease, "staff")
	}, time.Hour)
	env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	if held.Stage != contract.StageQuarantined {
		t.Errorf("stage while held %q, want quarantined", held.Stage)
	}
	if len(executeAt) != 2 || executeAt[1].Sub(executeAt[0]) < time.Hour {
		t.Errorf("execute ran at %v, want twice, the second after the release an hour later", executeAt)
	}
	if recorded.Status != contract.StatusGraded || recorded.Outcome != contract.OutcomePassed {
		t.Errorf("recorded %+v, want graded passed", recorded)
	}
	env.AssertExpectations(t)
}

// TestSubmissionCanceledWhileQuarantined cancels a held submission: it is
// recorded canceled.
func TestSubmissionCanceledWhileQuarantined(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(contract.ActivitySanity, mock.Anything, mock.Anything).Return(testPlan(), nil)
	env.OnActivity(contract.ActivityExecute, mock.Anything, mock.Anything).Return(
		contract.Execution{}, contract.NewQuarantined("s1", 3, nil)).Once()
	var recorded contract.Grade
	env.OnActivity(contract.ActivityRecord, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req contract.RecordRequest) (contract.Recorded, error) {
			recorded = req.Final
			return contract.Recorded{}, nil
		}).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(contract.WorkflowName, contract.Input{SubmissionID: "s1", Assignment: "wordcount", Student: "ada"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if recorded.Status != contract.StatusCanceled {
		t.Errorf("recorded %+v, want canceled", recorded)
	}
	env.AssertExpectations(t)
}
