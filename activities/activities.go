// Package activities implements the four steps that grade a submission —
// sanity check, execute, compare, record — as Temporal activities. Each is a
// method on Activities, whose Docker runner and MongoDB store are injected
// by the worker that registers it.
//
// Failures come in two kinds. A student failure (a syntax error, a wrong
// answer, a time limit) is final: it is returned as a non-retryable
// application error of type StudentFailure, and the workflow scores it.
// Anything else (Docker or MongoDB unreachable, a worker dying) is an
// infrastructure failure: Temporal retries it and it is never charged to the
// student.
package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// Error types that are final. The workflow lists them as non-retryable.
const (
	// StudentFailure is the type of every failure caused by the submission
	// itself. Its details are a Verdict.
	StudentFailure = "StudentFailure"
	// ConfigFailure means the assignment is missing or broken: retrying
	// will not help until staff fix it, and the student is not charged.
	ConfigFailure = "ConfigFailure"
)

// Config holds the limits and locations the activities work with.
type Config struct {
	Image           string        // Hadoop runtime image
	WorkDir         string        // host directory for per-attempt scratch dirs and the input cache
	MaxSubmission   int64         // bytes of submission files fetched
	MaxInput        int64         // bytes of assignment input fetched
	MaxOutput       int64         // bytes of job output kept (the container's stdout)
	MaxExpected     int64         // bytes of expected output read
	StderrBytes     int64         // bytes of container stderr kept
	ScratchFraction float64       // share of the memory limit given to the /scratch tmpfs
	PidsLimit       int64         // processes per container
	SanityTimeout   time.Duration // wall-clock limit of a sanity container
	HeartbeatEvery  time.Duration // how often execute heartbeats
}

// DefaultConfig returns limits suitable for course-sized jobs.
func DefaultConfig() Config {
	return Config{
		Image:           "gradeflow/hadoop:dev",
		WorkDir:         filepath.Join(os.TempDir(), "gradeflow"),
		MaxSubmission:   16 << 20,
		MaxInput:        1 << 30,
		MaxOutput:       16 << 20,
		MaxExpected:     64 << 20,
		StderrBytes:     64 << 10,
		ScratchFraction: 0.5,
		PidsLimit:       256,
		SanityTimeout:   60 * time.Second,
		HeartbeatEvery:  time.Second,
	}
}

// Activities grades submissions. Register it with a worker; workflows refer
// to its methods through a nil *Activities.
type Activities struct {
	Store  *store.Store
	Docker *sandbox.Runner
	Config Config
	// Notify, if set, tells a workflow that its submission reached a stage
	// the workflow cannot observe itself (its execute activity starting).
	// It is best effort: the read model in the store is authoritative.
	Notify func(ctx context.Context, workflowID string, stage store.Stage) error
	// HTTP delivers webhooks; build it with NewWebhookClient so that every
	// delivery is signed. Without it, Webhook fails for assignments that
	// have a webhook URL.
	HTTP *http.Client
	// NamespaceID is the ID of the Temporal namespace this worker serves. It
	// labels every container (sandbox.LabelNamespace), so that another
	// stack's janitor on the same engine leaves them alone.
	NamespaceID string

	inputs   inputCache
	jobs     jobHandoff
	expected expectedCache
}

// Request identifies a submission to grade.
type Request struct {
	SubmissionID string
	Assignment   string
	Student      string
	WorkflowID   string
}

// Plan is what the sanity check hands to execution: a snapshot of the
// assignment's configuration (so a later edit doesn't change a running
// grading) and how to run the submission.
type Plan struct {
	Request
	Config  store.Assignment
	Runtime string   // store.RuntimeStreaming or store.RuntimeJar
	Files   []string // the submission's files, relative
	Jar     string   // GridFS name of the compiled jar (jar runtime)
}

// Execution is the result of running a submission's job.
type Execution struct {
	Outputs    []string // GridFS names of the part-* files
	RunSeconds float64  // container wall time
}

// Verdict is a student outcome and its feedback.
type Verdict struct {
	Outcome  store.Outcome
	Feedback string
	MaxScore float64
}

// Grade is the scored result of a comparison.
type Grade struct {
	Outcome  store.Outcome
	Score    float64
	MaxScore float64
	Feedback string
	Tests    []store.TestResult
}

// RecordRequest is the final state of a submission to record.
type RecordRequest struct {
	Request
	Final store.Final
}

// studentFailure returns the final error for a student outcome.
func studentFailure(v Verdict) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s: %s", v.Outcome, firstLine(v.Feedback)), StudentFailure, nil, v)
}

// configFailure returns the final error for a broken assignment.
func configFailure(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ConfigFailure, nil)
}

// AsStudentFailure extracts the verdict from a student failure returned by
// any activity, as it arrives in the workflow.
func AsStudentFailure(err error) (Verdict, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != StudentFailure {
		return Verdict{}, false
	}
	var v Verdict
	if err := appErr.Details(&v); err != nil {
		return Verdict{Outcome: store.OutcomeRuntimeError, Feedback: appErr.Message()}, true
	}
	return v, true
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// notify calls Notify in the background, bounded in time, so that the step
// never waits for it.
func (a *Activities) notify(ctx context.Context, workflowID string, stage store.Stage) {
	if a.Notify == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	go func() {
		defer cancel()
		_ = a.Notify(ctx, workflowID, stage)
	}()
}
