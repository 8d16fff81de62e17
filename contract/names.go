// Package contract is what gradeflow's programs agree on to grade a
// submission through Temporal: the names of the workflow, its task queues,
// activities, query, signal and search attributes; the payloads that travel
// between the workflow and its activities; and the failure types that
// decide what is retried. The workflow, the activities, the API and the
// starter all import it, and it imports none of them, nor the store or the
// Docker SDK: changing a MongoDB document or the sandbox never changes a
// payload.
package contract

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Task queues. Each step has its own so that each can be scaled on its own
// hosts; the workflow task itself runs on the grade queue.
const (
	TaskQueueSanity  = "gradeflow-sanity"
	TaskQueueExecute = "gradeflow-execute"
	TaskQueueGrade   = "gradeflow-grade"
)

// Short queue names, as workers are configured with them (GRADEFLOW_QUEUES).
const (
	QueueSanity  = "sanity"
	QueueExecute = "execute"
	QueueGrade   = "grade"
)

// TaskQueues maps each short queue name to its task queue.
var TaskQueues = map[string]string{
	QueueSanity:  TaskQueueSanity,
	QueueExecute: TaskQueueExecute,
	QueueGrade:   TaskQueueGrade,
}

// WorkflowName is the registered name of the submission workflow.
const WorkflowName = "Submission"

// Activity names. The worker registers each step under its name and the
// workflow schedules it by the same constant, so renaming a Go method never
// changes what is dispatched. Recorded histories carry these names: they
// must not change.
const (
	ActivitySanity  = "Sanity"
	ActivityExecute = "Execute"
	ActivityCompare = "Compare"
	ActivityRecord  = "Record"
	ActivityWebhook = "Webhook"
)

// ActivityQueues maps each activity to the task queue it runs on.
var ActivityQueues = map[string]string{
	ActivitySanity:  TaskQueueSanity,
	ActivityExecute: TaskQueueExecute,
	ActivityCompare: TaskQueueGrade,
	ActivityRecord:  TaskQueueGrade,
	ActivityWebhook: TaskQueueGrade,

	ActivityStartRegrades: TaskQueueGrade,
}

// QueryStage is the query that returns a submission's current StageInfo.
const QueryStage = "stage"

// SignalStage is sent by activities when they move a submission to a stage
// the workflow cannot observe itself (the execute activity starting). Its
// payload is a Stage.
const SignalStage = "stage"

// SignalSupersede is sent by the intake to a submission that a newer one
// supersedes, so that it leaves the queue at once. Its payload is the
// newer submission's ID.
const SignalSupersede = "supersede"

// SignalRun is sent by the execute step as each attempt starts: its
// payload is the attempt's Run (worker identity, host, attempt), so that
// the workflow history holds every attempt, those whose worker died too.
const SignalRun = "run"

// SignalRelease is sent by staff (POST /v1/submissions/{id}/release) to a
// quarantined submission: its execution is tried again, with a fresh count
// of worker deaths. Its payload is who released it.
const SignalRelease = "release"

// Search attributes set on every submission workflow, so that staff can
// filter by them in the Temporal Web UI (e.g. GradeflowStage="running").
// The server must have them registered (deploy/dev does so).
var (
	SearchAssignment = temporal.NewSearchAttributeKeyKeyword("GradeflowAssignment")
	SearchStudent    = temporal.NewSearchAttributeKeyKeyword("GradeflowStudent")
	SearchStage      = temporal.NewSearchAttributeKeyKeyword("GradeflowStage")
	SearchOutcome    = temporal.NewSearchAttributeKeyKeyword("GradeflowOutcome")
)

// SearchAttributeNames lists the attributes to register on a server, by name.
var SearchAttributeNames = []string{
	SearchAssignment.GetName(), SearchStudent.GetName(), SearchStage.GetName(), SearchOutcome.GetName(),
}

// WorkflowID returns the workflow ID of a submission. It is derived from
// the submission ID only, so a submission can never be graded twice at once.
func WorkflowID(submissionID string) string { return "submission-" + submissionID }

// StartOptions returns the options every submission workflow starts with.
// An ID that ran before is rejected and a running one is reused, so that
// starting the same submission twice grades it once.
func StartOptions(in Input) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       WorkflowID(in.SubmissionID),
		TaskQueue:                TaskQueueGrade,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("%s by %s", in.Assignment, in.Student),
		Priority:                 PriorityOf(in),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SearchAssignment.ValueSet(in.Assignment),
			SearchStudent.ValueSet(in.Student),
			SearchStage.ValueSet(string(StageSubmitted)),
		),
	}
}

// RegradeAllName is the registered name of the regrade-all workflow, which
// starts the planned regrades of one regrade-all run (see RegradeAllInput).
const RegradeAllName = "RegradeAll"

// ActivityStartRegrades starts the planned regrades of a regrade-all run,
// on the grade queue. Recorded histories carry the name: it must not change.
const ActivityStartRegrades = "StartRegrades"

// RegradeAllWorkflowID returns the workflow ID of a regrade-all run. It is
// derived from the run's ID only, so a run's regrades are started by one
// workflow, however often the request that planned it is retried.
func RegradeAllWorkflowID(runID string) string { return "regrade-" + runID }

// RegradeAllStartOptions returns the options a regrade-all workflow starts
// with: one at a time per run, and a run whose workflow completed is never
// started again (one that failed may be), on the grade queue, in the
// regrade lane of its assignment.
func RegradeAllStartOptions(in RegradeAllInput) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       RegradeAllWorkflowID(in.RunID),
		TaskQueue:                TaskQueueGrade,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("regrade-all of %s: %d submission(s)", in.Assignment, in.Items),
		Priority:                 PriorityOf(Input{Assignment: in.Assignment, Lane: LaneRegrade}),
	}
}
