package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
)

// Bounds of the StartRegrades step. Each regrade it starts is a heartbeat,
// so a dead worker is noticed within regradeHeartbeat and the next attempt
// resumes after the last regrade it reported. An attempt may take
// regradeAttempt (a few thousand regrades); infrastructure failures retry
// with backoff for regradeGiveUp, then the workflow fails for staff to see.
const (
	regradeHeartbeat = time.Minute
	regradeAttempt   = 2 * time.Hour
	regradeGiveUp    = 24 * time.Hour
)

// RegradeAll starts the regrades of a regrade-all run that the intake has
// planned: the run, each item with its reserved regrade ID, is in the
// store before the workflow starts. One activity starts them in order;
// starting a regrade is idempotent (its ID is fixed), so a retried attempt
// that repeats one grades nothing twice. A regrade that can never start
// (its files are gone) is recorded as its item's error by the activity;
// only a missing run (ConfigFailure) ends the workflow without retries.
func RegradeAll(ctx workflow.Context, in contract.RegradeAllInput) (contract.RegradesStarted, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              contract.ActivityQueues[contract.ActivityStartRegrades],
		StartToCloseTimeout:    regradeAttempt,
		ScheduleToCloseTimeout: regradeGiveUp,
		HeartbeatTimeout:       regradeHeartbeat,
		Summary:                fmt.Sprintf("start %d regrade(s) of %s", in.Items, in.Assignment),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{contract.ConfigFailure},
		},
	})
	var got contract.RegradesStarted
	err := workflow.ExecuteActivity(ctx, contract.ActivityStartRegrades, contract.StartRegradesRequest{RunID: in.RunID}).Get(ctx, &got)
	if err != nil {
		return got, fmt.Errorf("start regrades of %s: %w", in.RunID, err)
	}
	workflow.GetLogger(ctx).Info("regrades started", "regrade_id", in.RunID, "started", got.Started, "refused", got.Refused)
	return got, nil
}
