package contract

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
)

// Failure types: the Type of the non-retryable application errors that end
// a step for good. The workflow lists them as non-retryable; anything else
// an activity returns is an infrastructure failure, retried by Temporal and
// never charged to the student.
const (
	// StudentFailure is the type of every failure caused by the submission
	// itself (a syntax error, a wrong answer, a time limit). Its details are
	// a Grade with Outcome, Feedback and MaxScore.
	StudentFailure = "StudentFailure"
	// ConfigFailure means the assignment is missing or broken: retrying
	// will not help until staff fix it, and the student is not charged.
	ConfigFailure = "ConfigFailure"
	// WebhookRejected is a delivery the receiver refused for good (a 4xx
	// other than 408, 425 or 429): retrying will not help.
	WebhookRejected = "WebhookRejected"
	// Superseded: the execute step declined a submission that a newer one
	// of the same student supersedes. The workflow records it superseded.
	Superseded = "Superseded"
	// Quarantined: the execute step declined a submission whose earlier
	// attempts killed their workers too often. Its details are the []Run.
	// The workflow holds it for a staff release.
	Quarantined = "Quarantined"
)

// NewSuperseded returns the execute step's refusal of a superseded
// submission; its details are the newer submission's ID.
func NewSuperseded(id, by string) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("submission %s is superseded by %s", id, by), Superseded, nil, by)
}

// AsSuperseded reports whether err is a Superseded refusal, and by which
// submission.
func AsSuperseded(err error) (by string, ok bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != Superseded {
		return "", false
	}
	_ = appErr.Details(&by)
	return by, true
}

// NewQuarantined returns the execute step's refusal of a submission whose
// attempts killed workers dead times; runs are its attempts so far.
func NewQuarantined(id string, dead int, runs []Run) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("submission %s quarantined: %d attempts killed their workers", id, dead), Quarantined, nil, runs)
}

// IsFailure reports whether err is, or wraps, an application error of typ.
func IsFailure(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
}

// NewStudentFailure returns the final error of a student outcome. g needs
// Outcome, Feedback and MaxScore.
func NewStudentFailure(g Grade) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s: %s", g.Outcome, firstLine(g.Feedback)), StudentFailure, nil, g)
}

// NewConfigFailure returns the final error of a broken assignment.
func NewConfigFailure(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ConfigFailure, nil)
}

// AsStudentFailure extracts the grade from a student failure returned by
// any activity, as it arrives in the workflow.
func AsStudentFailure(err error) (Grade, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != StudentFailure {
		return Grade{}, false
	}
	var g Grade
	if err := appErr.Details(&g); err != nil {
		return Grade{Outcome: OutcomeRuntimeError, Feedback: appErr.Message()}, true
	}
	return g, true
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
