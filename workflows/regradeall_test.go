package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
)

// TestRegradeAll runs the regrade-all workflow with its one activity
// mocked: the activity gets the run's ID on the grade queue with a
// heartbeat timeout, infrastructure failures are retried (the activity
// resumes from its heartbeat), and a missing run is not.
func TestRegradeAll(t *testing.T) {
	in := contract.RegradeAllInput{RunID: "rg-1", Assignment: "wc", Items: 3}
	infra := errors.New("mongodb: connection refused")
	missing := temporal.NewNonRetryableApplicationError("regrade rg-1: not found", contract.ConfigFailure, nil)
	tests := []struct {
		name      string
		errs      []error // the activity's errors, one per attempt, then success
		want      contract.RegradesStarted
		wantErr   bool
		wantCalls int
	}{
		{name: "starts every regrade", want: contract.RegradesStarted{Next: 3, Started: 2, Refused: 1}, wantCalls: 1},
		{name: "infrastructure failures retry", errs: []error{infra, infra}, want: contract.RegradesStarted{Next: 3, Started: 2, Refused: 1}, wantCalls: 3},
		{name: "a missing run is not retried", errs: []error{missing}, wantErr: true, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(RegradeAll, workflow.RegisterOptions{Name: contract.RegradeAllName})
			env.RegisterActivityWithOptions(func(context.Context, contract.StartRegradesRequest) (contract.RegradesStarted, error) {
				panic("not mocked")
			}, activity.RegisterOptions{Name: contract.ActivityStartRegrades})
			var opts []activity.Info
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				opts = append(opts, *info)
			})
			calls := 0
			env.OnActivity(contract.ActivityStartRegrades, mock.Anything, contract.StartRegradesRequest{RunID: "rg-1"}).Return(
				func(context.Context, contract.StartRegradesRequest) (contract.RegradesStarted, error) {
					calls++
					if calls <= len(tt.errs) {
						return contract.RegradesStarted{}, tt.errs[calls-1]
					}
					return tt.want, nil
				})
			env.ExecuteWorkflow(contract.RegradeAllName, in)
			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			if err := env.GetWorkflowError(); (err != nil) != tt.wantErr {
				t.Fatalf("workflow error %v, want error %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("activity ran %d times, want %d", calls, tt.wantCalls)
			}
			if len(opts) != tt.wantCalls {
				t.Errorf("%d activity starts seen, want %d", len(opts), tt.wantCalls)
			}
			for _, info := range opts {
				if info.TaskQueue != contract.TaskQueueGrade || info.HeartbeatTimeout != regradeHeartbeat {
					t.Errorf("activity on %s with heartbeat timeout %s, want %s and %s", info.TaskQueue, info.HeartbeatTimeout, contract.TaskQueueGrade, regradeHeartbeat)
				}
			}
			if tt.wantErr {
				return
			}
			var got contract.RegradesStarted
			if err := env.GetWorkflowResult(&got); err != nil || got != tt.want {
				t.Errorf("result %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
