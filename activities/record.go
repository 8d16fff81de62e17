package activities

import (
	"context"
	"errors"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Record writes a submission's final state to the submissions collection.
// It is an upsert keyed by the submission ID, so a retry writes the same
// document again.
func (a *Activities) Record(ctx context.Context, req contract.RecordRequest) (contract.Recorded, error) {
	sub := store.Submission{Assignment: req.Assignment, Student: req.Student, WorkflowID: req.WorkflowID}
	if err := a.Submissions.Record(ctx, req.SubmissionID, sub, req.Final, time.Now()); err != nil {
		return contract.Recorded{}, err
	}
	asg, err := a.Submissions.Assignment(ctx, req.Assignment)
	if errors.Is(err, store.ErrNotFound) {
		return contract.Recorded{}, nil
	}
	if err != nil {
		return contract.Recorded{}, err
	}
	return contract.Recorded{Webhook: asg.WebhookURL != ""}, nil
}
