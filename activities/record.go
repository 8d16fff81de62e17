package activities

import (
	"context"
	"time"

	"github.com/gradeflow/gradeflow/store"
)

// Record writes a submission's final state to the submissions collection.
// It is an upsert keyed by the submission ID, so a retry writes the same
// document again.
func (a *Activities) Record(ctx context.Context, req RecordRequest) error {
	sub := store.Submission{Assignment: req.Assignment, Student: req.Student, WorkflowID: req.WorkflowID}
	return a.Store.Record(ctx, req.SubmissionID, sub, req.Final, time.Now())
}
