// Package workflows holds gradeflow's durable workflows: the submission
// workflow (sanity check, execute, compare, record, then the webhook) and
// the regrade-all workflow that starts a planned run's regrades. They
// schedule their activities by the names in package contract and know
// nothing of their implementation, the store or Docker.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
)

// stageOrder ranks stages so that a late signal never moves a submission back.
var stageOrder = map[contract.Stage]int{
	contract.StageSubmitted: 0, contract.StageSanity: 1, contract.StageQueued: 2, contract.StageRunning: 3,
	contract.StageComparing: 4, contract.StageRecording: 5, contract.StageDone: 6,
	contract.StageQuarantined: 2, // waits like a queued one: only running moves it on
}

// Submission grades one submission: sanity check, execute, compare, record.
// Student failures end it early with a scored outcome; infrastructure
// failures are retried by Temporal, and if they persist the submission is
// recorded as an error (never charged to the student) and the workflow fails
// so that staff see it in the Web UI and can reset it.
func Submission(ctx workflow.Context, in contract.Input) (contract.Result, error) {
	if in.HeartbeatTimeout <= 0 {
		in.HeartbeatTimeout = contract.DefaultHeartbeatTimeout
	}
	if in.ExecuteAttempts <= 0 {
		in.ExecuteAttempts = contract.DefaultExecuteAttempts
	}
	g := &grading{
		req: contract.Request{
			SubmissionID: in.SubmissionID,
			Assignment:   in.Assignment,
			Student:      in.Student,
			WorkflowID:   workflow.GetInfo(ctx).WorkflowExecution.ID,
			Files:        in.Files,
		},
		stage: contract.StageInfo{Stage: contract.StageSubmitted, Since: workflow.Now(ctx)},
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryStage, func() (contract.StageInfo, error) {
		s := g.stage
		s.Runs = g.runs
		return s, nil
	}); err != nil {
		return contract.Result{}, fmt.Errorf("register query: %w", err)
	}
	onSignal(ctx, contract.SignalStage, g.advance)
	// Each execute attempt signals its Run as it starts, so that the
	// history names every attempt's worker and host; the workflow only
	// keeps them.
	onSignal(ctx, contract.SignalRun, func(_ workflow.Context, r contract.Run) { g.runs = append(g.runs, r) })
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		contract.SearchAssignment.ValueSet(in.Assignment), contract.SearchStudent.ValueSet(in.Student))
	// A newer submission of the same student that supersedes this one
	// (the intake signals it only while this one has not started
	// executing) cancels the steps before execution at once, so that it
	// leaves the queue; without the signal nothing changes.
	work, cancelWork := workflow.WithCancel(ctx)
	defer cancelWork()
	supersede := workflow.GetSignalChannel(ctx, contract.SignalSupersede)
	workflow.Go(ctx, func(ctx workflow.Context) {
		var by string
		if supersede.Receive(ctx, &by) {
			g.supersededBy = by
			cancelWork()
		}
	})

	g.advance(ctx, contract.StageSanity)
	var plan contract.Plan
	err := workflow.ExecuteActivity(step{
		activity:     contract.ActivitySanity,
		summary:      "sanity check: compile, forbidden imports",
		startToClose: 3 * time.Minute,
		heartbeat:    in.HeartbeatTimeout,
		attempts:     10,
	}.options(work), contract.ActivitySanity, g.req).Get(work, &plan)
	if err != nil {
		return g.finish(ctx, err)
	}
	g.maxScore = plan.Config.Points
	if g.supersededBy != "" {
		return g.finish(ctx, temporal.NewCanceledError())
	}

	g.advance(ctx, contract.StageQueued)
	// The tests' limits together (one limit in the single-test form), and
	// a JVM start per test.
	limit := plan.Config.TotalTimeLimit()
	var exec contract.Execution
	release := workflow.GetSignalChannel(ctx, contract.SignalRelease)
	for {
		err = workflow.ExecuteActivity(step{
			activity:     contract.ActivityExecute,
			summary:      fmt.Sprintf("execute: %s job, limit %s", plan.Runtime, limit),
			startToClose: limit + 2*time.Minute + time.Duration(len(plan.Config.Tests))*5*time.Second,
			heartbeat:    in.HeartbeatTimeout,
			attempts:     in.ExecuteAttempts,
		}.options(work), contract.ActivityExecute, plan).Get(work, &exec)
		if !contract.IsFailure(err, contract.Quarantined) {
			break
		}
		// Its attempts killed their workers: held for staff, then run as
		// a new step (a fresh count of deaths).
		if err = g.quarantine(work, release); err != nil {
			break
		}
	}
	if err != nil {
		return g.finish(ctx, err)
	}
	g.runSeconds = exec.RunSeconds

	g.advance(ctx, contract.StageComparing)
	var grade contract.Grade
	err = workflow.ExecuteActivity(step{
		activity:     contract.ActivityCompare,
		summary:      "compare output with expected",
		startToClose: time.Minute,
		attempts:     compareAttempts,
	}.options(ctx), contract.ActivityCompare, contract.CompareInput{Plan: plan, Execution: exec}).Get(ctx, &grade)
	if err != nil {
		return g.finish(ctx, err)
	}
	grade.Status, grade.RunSeconds = contract.StatusGraded, exec.RunSeconds
	return g.record(ctx, grade)
}

// grading is the state of one workflow run.
type grading struct {
	req        contract.Request
	stage      contract.StageInfo
	maxScore   float64
	runSeconds float64 // the job's run time, once it ran
	// supersededBy is the newer submission that superseded this one.
	supersededBy string
	runs         []contract.Run // the execute attempts signalled (SignalRun)
}

// quarantine holds a submission whose execute attempts killed their
// workers until staff release it (SignalRelease), in stage quarantined:
// the query, the GradeflowStage search attribute (and the read model,
// written by the execute step) show it. It returns a cancellation error
// if the workflow is canceled meanwhile.
func (g *grading) quarantine(ctx workflow.Context, release workflow.ReceiveChannel) error {
	log := workflow.GetLogger(ctx)
	log.Warn("quarantined: execute attempts killed their workers", "submission_id", g.req.SubmissionID)
	g.stage = contract.StageInfo{Stage: contract.StageQuarantined, Since: workflow.Now(ctx)}
	_ = workflow.UpsertTypedSearchAttributes(ctx, contract.SearchStage.ValueSet(string(contract.StageQuarantined)))
	var by string
	released := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(release, func(c workflow.ReceiveChannel, _ bool) { released = c.ReceiveAsync(&by) })
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
	if !released {
		return temporal.NewCanceledError("canceled while quarantined")
	}
	log.Info("released from quarantine", "submission_id", g.req.SubmissionID, "released_by", by)
	g.stage = contract.StageInfo{Stage: contract.StageQueued, Since: workflow.Now(ctx)}
	_ = workflow.UpsertTypedSearchAttributes(ctx, contract.SearchStage.ValueSet(string(contract.StageQueued)))
	return nil
}

// advance moves to stage s, unless the workflow is already past it.
func (g *grading) advance(ctx workflow.Context, s contract.Stage) {
	if stageOrder[s] <= stageOrder[g.stage.Stage] {
		return
	}
	g.stage = contract.StageInfo{Stage: s, Since: workflow.Now(ctx)}
	_ = workflow.UpsertTypedSearchAttributes(ctx, contract.SearchStage.ValueSet(string(s)))
}

// finish turns a failed step into the submission's final state.
func (g *grading) finish(ctx workflow.Context, err error) (contract.Result, error) {
	if by, ok := contract.AsSuperseded(err); ok || g.supersededBy != "" {
		if g.supersededBy != "" {
			by = g.supersededBy
		}
		return g.record(ctx, contract.Grade{
			Status: contract.StatusSuperseded, MaxScore: g.maxScore,
			Feedback: fmt.Sprintf("superseded by your newer submission %s before it ran: not graded, not counted", by),
		})
	}
	if v, ok := contract.AsStudentFailure(err); ok {
		return g.record(ctx, contract.Grade{
			Status: contract.StatusGraded, Outcome: v.Outcome, Score: 0, MaxScore: max(g.maxScore, v.MaxScore),
			Feedback: v.Feedback, RunSeconds: g.runSeconds, Grader: v.Grader,
		})
	}
	if temporal.IsCanceledError(err) {
		res, rerr := g.record(ctx, contract.Grade{Status: contract.StatusCanceled, Feedback: "grading was canceled", MaxScore: g.maxScore})
		if rerr != nil {
			return res, rerr
		}
		return res, err
	}
	res, rerr := g.record(ctx, contract.Grade{
		Status: contract.StatusError, MaxScore: g.maxScore,
		Feedback:    "grading failed for a reason that is not your submission's fault; staff have been notified and it will be retried",
		ErrorDetail: err.Error(),
	})
	if rerr != nil {
		return res, rerr
	}
	return res, fmt.Errorf("grade submission %s: %w", g.req.SubmissionID, err)
}

// Bounds on the steps after the job ran. Compare reads stored files and
// does arithmetic: if it keeps failing, something is broken that retries
// will not mend, and the submission is recorded as an error. Record keeps
// trying through a long store outage (the grade is worth keeping), then
// fails the workflow so that staff see it in the Web UI and reset it.
const (
	compareAttempts = 5
	recordAttempts  = 200 // about 1.6 hours at the 30 s retry ceiling
)

// record writes the final state, on a context that a cancellation does
// not reach: a grade that exists is always recorded, and a cancel that
// lands between two steps never leaves the read model at a running stage.
func (g *grading) record(ctx workflow.Context, final contract.Grade) (contract.Result, error) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	g.advance(ctx, contract.StageRecording)
	var rec contract.Recorded
	err := workflow.ExecuteActivity(step{
		activity:     contract.ActivityRecord,
		summary:      fmt.Sprintf("record %s %s", final.Status, final.Outcome),
		startToClose: time.Minute,
		attempts:     recordAttempts,
	}.options(ctx), contract.ActivityRecord, contract.RecordRequest{Request: g.req, Final: final}).Get(ctx, &rec)
	if err != nil {
		return contract.Result{}, fmt.Errorf("record submission %s: %w", g.req.SubmissionID, err)
	}
	g.advance(ctx, contract.StageDone)
	if rec.Webhook {
		g.webhook(ctx)
	}
	outcome := string(final.Outcome)
	if outcome == "" { // errors and cancellations have a status, not an outcome
		outcome = string(final.Status)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, contract.SearchOutcome.ValueSet(outcome))
	// A result carries no per-test detail: the read model has it.
	final.Tests = nil
	return contract.Result{SubmissionID: g.req.SubmissionID, Grade: final}, nil
}

// webhook delivers the result to the assignment's webhook, if it has one.
// It runs after the record step and never fails the grading: a receiver
// that is down is retried with backoff for an hour, then given up on.
func (g *grading) webhook(ctx workflow.Context) {
	// Histories recorded before webhooks existed replay without this step.
	if workflow.GetVersion(ctx, "webhook", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              contract.ActivityQueues[contract.ActivityWebhook],
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		Summary:                "webhook: deliver the result",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: []string{contract.WebhookRejected, contract.ConfigFailure},
		},
	})
	err := workflow.ExecuteActivity(ctx, contract.ActivityWebhook, contract.WebhookRequest{
		SubmissionID: g.req.SubmissionID, Assignment: g.req.Assignment,
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("webhook not delivered", "submission_id", g.req.SubmissionID, "error", err)
	}
}

// step is the options of one grading step. Infrastructure failures retry
// with backoff, up to attempts tries (0: until they succeed); student and
// configuration failures never retry.
type step struct {
	activity     string        // contract.Activity*: picks the task queue
	summary      string        // shown in the Web UI
	startToClose time.Duration // bound on one attempt
	heartbeat    time.Duration // 0: no heartbeat timeout
	attempts     int32         // 0: retry until it succeeds
}

func (s step) options(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           contract.ActivityQueues[s.activity],
		StartToCloseTimeout: s.startToClose,
		HeartbeatTimeout:    s.heartbeat,
		Summary:             s.summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        s.attempts,
			NonRetryableErrorTypes: []string{contract.StudentFailure, contract.ConfigFailure},
		},
	})
}

// onSignal hands each signal of the given name to fn, in order, from a
// workflow goroutine that lives as long as the workflow.
func onSignal[T any](ctx workflow.Context, name string, fn func(workflow.Context, T)) {
	ch := workflow.GetSignalChannel(ctx, name)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var v T
			if !ch.Receive(ctx, &v) {
				return
			}
			fn(ctx, v)
		}
	})
}
