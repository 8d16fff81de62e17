// Package workflows holds gradeflow's durable submission workflow and the
// names that the API, the starter and the workers share to reach it: task
// queues, the stage query and signal, search attributes and workflow IDs.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/store"
)

// Input starts the grading of one submission. The submission's files are in
// GridFS already; only their owner's IDs travel through Temporal.
type Input struct {
	SubmissionID string
	Assignment   string
	Student      string
	// HeartbeatTimeout bounds how long a dead execute worker goes unnoticed.
	// Zero means DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// ExecuteAttempts bounds infrastructure retries of the execute step
	// (each worker crash is one). Zero means DefaultExecuteAttempts.
	ExecuteAttempts int32
}

// Defaults for Input's optional fields.
const (
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultExecuteAttempts  = 8
)

// Result is the outcome of a submission's grading.
type Result struct {
	SubmissionID string
	Status       store.Status
	Outcome      store.Outcome
	Score        float64
	MaxScore     float64
	Feedback     string
	RunSeconds   float64
}

// StageInfo answers QueryStage.
type StageInfo struct {
	Stage store.Stage
	Since time.Time
}

// SignalStage is sent by activities when they move a submission to a stage
// the workflow cannot observe itself (the execute activity starting). Its
// payload is a store.Stage.
const SignalStage = "stage"

// stageOrder ranks stages so that a late signal never moves a submission back.
var stageOrder = map[store.Stage]int{
	store.StageSubmitted: 0, store.StageSanity: 1, store.StageQueued: 2, store.StageRunning: 3,
	store.StageComparing: 4, store.StageRecording: 5, store.StageDone: 6,
}

// Submission grades one submission: sanity check, execute, compare, record.
// Student failures end it early with a scored outcome; infrastructure
// failures are retried by Temporal, and if they persist the submission is
// recorded as an error (never charged to the student) and the workflow fails
// so that staff see it in the Web UI and can reset it.
func Submission(ctx workflow.Context, in Input) (Result, error) {
	if in.HeartbeatTimeout <= 0 {
		in.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if in.ExecuteAttempts <= 0 {
		in.ExecuteAttempts = DefaultExecuteAttempts
	}
	g := &grading{
		req: activities.Request{
			SubmissionID: in.SubmissionID,
			Assignment:   in.Assignment,
			Student:      in.Student,
			WorkflowID:   workflow.GetInfo(ctx).WorkflowExecution.ID,
		},
		stage: StageInfo{Stage: store.StageSubmitted, Since: workflow.Now(ctx)},
	}
	if err := workflow.SetQueryHandler(ctx, QueryStage, func() (StageInfo, error) { return g.stage, nil }); err != nil {
		return Result{}, fmt.Errorf("register query: %w", err)
	}
	stageSignals := workflow.GetSignalChannel(ctx, SignalStage)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var s store.Stage
			if !stageSignals.Receive(ctx, &s) {
				return
			}
			g.advance(ctx, s)
		}
	})
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		SearchAssignment.ValueSet(in.Assignment), SearchStudent.ValueSet(in.Student))

	var a *activities.Activities
	g.advance(ctx, store.StageSanity)
	var plan activities.Plan
	err := workflow.ExecuteActivity(withOptions(ctx, TaskQueueSanity, "sanity check: compile, forbidden imports",
		3*time.Minute, in.HeartbeatTimeout, 10), a.Sanity, g.req).Get(ctx, &plan)
	if err != nil {
		return g.finish(ctx, err, 0)
	}
	g.maxScore = plan.Config.Points

	g.advance(ctx, store.StageQueued)
	limit := time.Duration(plan.Config.TimeLimitSeconds) * time.Second
	var exec activities.Execution
	err = workflow.ExecuteActivity(withOptions(ctx, TaskQueueExecute,
		fmt.Sprintf("execute: %s job, limit %s", plan.Runtime, limit),
		limit+2*time.Minute, in.HeartbeatTimeout, in.ExecuteAttempts), a.Execute, plan).Get(ctx, &exec)
	if err != nil {
		return g.finish(ctx, err, 0)
	}

	g.advance(ctx, store.StageComparing)
	var grade activities.Grade
	err = workflow.ExecuteActivity(withOptions(ctx, TaskQueueGrade, "compare output with expected",
		time.Minute, 0, 0), a.Compare, activities.CompareInput{Plan: plan, Execution: exec}).Get(ctx, &grade)
	if err != nil {
		return g.finish(ctx, err, exec.RunSeconds)
	}
	return g.record(ctx, store.Final{
		Status: store.StatusGraded, Outcome: grade.Outcome, Score: grade.Score, MaxScore: grade.MaxScore,
		Feedback: grade.Feedback, Tests: grade.Tests, RunSeconds: exec.RunSeconds,
	})
}

// grading is the state of one workflow run.
type grading struct {
	req      activities.Request
	stage    StageInfo
	maxScore float64
}

// advance moves to stage s, unless the workflow is already past it.
func (g *grading) advance(ctx workflow.Context, s store.Stage) {
	if stageOrder[s] <= stageOrder[g.stage.Stage] {
		return
	}
	g.stage = StageInfo{Stage: s, Since: workflow.Now(ctx)}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchStage.ValueSet(string(s)))
}

// finish turns a failed step into the submission's final state.
func (g *grading) finish(ctx workflow.Context, err error, runSeconds float64) (Result, error) {
	if v, ok := activities.AsStudentFailure(err); ok {
		return g.record(ctx, store.Final{
			Status: store.StatusGraded, Outcome: v.Outcome, Score: 0, MaxScore: max(g.maxScore, v.MaxScore),
			Feedback: v.Feedback, RunSeconds: runSeconds,
		})
	}
	if temporal.IsCanceledError(err) {
		// Record on a context that survives the cancellation.
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		res, rerr := g.record(dctx, store.Final{Status: store.StatusCanceled, Feedback: "grading was canceled", MaxScore: g.maxScore})
		if rerr != nil {
			return res, rerr
		}
		return res, err
	}
	res, rerr := g.record(ctx, store.Final{
		Status: store.StatusError, MaxScore: g.maxScore,
		Feedback:    "grading failed for a reason that is not your submission's fault; staff have been notified and it will be retried",
		ErrorDetail: err.Error(),
	})
	if rerr != nil {
		return res, rerr
	}
	return res, fmt.Errorf("grade submission %s: %w", g.req.SubmissionID, err)
}

// record writes the final state; it retries until the store takes it.
func (g *grading) record(ctx workflow.Context, f store.Final) (Result, error) {
	g.advance(ctx, store.StageRecording)
	var a *activities.Activities
	var rec activities.Recorded
	err := workflow.ExecuteActivity(withOptions(ctx, TaskQueueGrade, fmt.Sprintf("record %s %s", f.Status, f.Outcome),
		time.Minute, 0, 0), a.Record, activities.RecordRequest{Request: g.req, Final: f}).Get(ctx, &rec)
	if err != nil {
		return Result{}, fmt.Errorf("record submission %s: %w", g.req.SubmissionID, err)
	}
	g.advance(ctx, store.StageDone)
	if rec.Webhook {
		g.webhook(ctx)
	}
	outcome := string(f.Outcome)
	if outcome == "" { // errors and cancellations have a status, not an outcome
		outcome = string(f.Status)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchOutcome.ValueSet(outcome))
	return Result{
		SubmissionID: g.req.SubmissionID, Status: f.Status, Outcome: f.Outcome,
		Score: f.Score, MaxScore: f.MaxScore, Feedback: f.Feedback, RunSeconds: f.RunSeconds,
	}, nil
}

// webhook delivers the result to the assignment's webhook, if it has one.
// It runs after the record step and never fails the grading: a receiver
// that is down is retried with backoff for an hour, then given up on.
func (g *grading) webhook(ctx workflow.Context) {
	// Histories recorded before webhooks existed replay without this step.
	if workflow.GetVersion(ctx, "webhook", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueGrade,
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		Summary:                "webhook: deliver the result",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.WebhookRejected, activities.ConfigFailure},
		},
	})
	err := workflow.ExecuteActivity(ctx, a.Webhook, activities.WebhookRequest{
		SubmissionID: g.req.SubmissionID, Assignment: g.req.Assignment,
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("webhook not delivered", "submission", g.req.SubmissionID, "error", err)
	}
}

// withOptions sets the options of one step. Infrastructure failures retry
// with backoff, up to attempts tries (0: until they succeed); student and
// configuration failures never retry.
func withOptions(ctx workflow.Context, queue, summary string, startToClose, heartbeat time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    heartbeat,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        attempts,
			NonRetryableErrorTypes: []string{activities.StudentFailure, activities.ConfigFailure},
		},
	})
}
