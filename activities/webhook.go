package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/webhook"
)

// Webhook POSTs a finished submission's result (the read-model document,
// as GET /v1/submissions/{id} shows it) to its assignment's webhook URL,
// if it has one. It makes one attempt: Temporal retries it with backoff.
// Run it after the record step, so that the grade never waits for it.
func (a *Activities) Webhook(ctx context.Context, req contract.WebhookRequest) error {
	asg, err := a.Submissions.Assignment(ctx, req.Assignment)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted since: nobody to tell
	}
	if err != nil {
		return err
	}
	if asg.WebhookURL == "" {
		return nil
	}
	if a.HTTP == nil {
		return contract.NewConfigFailure("webhook for %s: no webhook client configured on the worker", req.Assignment)
	}
	sub, err := a.Submissions.Submission(ctx, req.SubmissionID)
	if err != nil {
		return err
	}
	// The portal's view: hidden tests as name, score and status; no job
	// logs. (The delivery time is the grading's, so a retried delivery
	// sends the same body.)
	sub = sub.ForStudents(asg.DueAt, sub.UpdatedAt)
	body, err := json.Marshal(webhook.Payload{Event: webhook.EventCompleted, Submission: &sub, SentAt: sub.UpdatedAt})
	if err != nil {
		return fmt.Errorf("encode webhook: %w", err)
	}
	_, err = webhook.Post(ctx, a.HTTP, asg.WebhookURL, webhook.EventCompleted, req.SubmissionID, body)
	return err
}
