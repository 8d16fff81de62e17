package workflows

import "go.temporal.io/sdk/temporal"

// Task queues. Each step has its own so that each can be scaled on its own
// hosts; the workflow task itself runs on the grade queue.
const (
	TaskQueueSanity  = "gradeflow-sanity"
	TaskQueueExecute = "gradeflow-execute"
	TaskQueueGrade   = "gradeflow-grade"
)

// TaskQueues lists every task queue, by the short name workers are configured with.
var TaskQueues = map[string]string{
	"sanity":  TaskQueueSanity,
	"execute": TaskQueueExecute,
	"grade":   TaskQueueGrade,
}

// QueryStage is the query that returns a submission's current StageInfo.
const QueryStage = "stage"

// WorkflowName is the registered name of the submission workflow.
const WorkflowName = "Submission"

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
