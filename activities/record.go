package activities

import (
	"context"
	"errors"
	"time"

	"github.com/gradeflow/gradeflow/store"
)

// Recorded says what follows a record step.
type Recorded struct {
	// Webhook is true when the assignment has a webhook URL to deliver the
	// result to, so that the workflow schedules a delivery only then.
	Webhook bool
}

// Record writes a submission's final state to the submissions collection.
// It is an upsert keyed by the submission ID, so a retry writes the same
// document again.
func (a *Activities) Record(ctx context.Context, req RecordRequest) (Recorded, error) {
	sub := store.Submission{Assignment: req.Assignment, Student: req.Student, WorkflowID: req.WorkflowID}
	if err := a.Store.Record(ctx, req.SubmissionID, sub, req.Final, time.Now()); err != nil {
		return Recorded{}, err
	}
	asg, err := a.Store.Assignment(ctx, req.Assignment)
	if errors.Is(err, store.ErrNotFound) {
		return Recorded{}, nil
	}
	if err != nil {
		return Recorded{}, err
	}
	return Recorded{Webhook: asg.WebhookURL != ""}, nil
}
