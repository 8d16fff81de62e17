package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/store"
)

// ClientConfig says how to reach Temporal. Programs fill it from the
// standard TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE environment variables.
type ClientConfig struct {
	HostPort  string
	Namespace string
	Identity  string // worker identity shown in the Web UI; empty for the SDK's default
}

// Dial connects to Temporal, logging through zl.
func Dial(ctx context.Context, cfg ClientConfig, zl *zap.Logger) (client.Client, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  cfg.HostPort,
		Namespace: cfg.Namespace,
		Identity:  cfg.Identity,
		Logger:    NewZapAdapter(zl),
	})
	if err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", cfg.HostPort, err)
	}
	return c, nil
}

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
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SearchAssignment.ValueSet(in.Assignment),
			SearchStudent.ValueSet(in.Student),
			SearchStage.ValueSet(string(store.StageSubmitted)),
		),
	}
}

// Start starts the submission workflow, or finds the one that already ran
// or runs for that submission.
func Start(ctx context.Context, c client.Client, in Input) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, StartOptions(in), WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return c.GetWorkflow(ctx, WorkflowID(in.SubmissionID), ""), nil
	}
	if err != nil {
		return nil, fmt.Errorf("start workflow %s: %w", WorkflowID(in.SubmissionID), err)
	}
	return run, nil
}

// NewSubmission is a submission as the portal or the starter hands it in.
type NewSubmission struct {
	ID         string
	Assignment string
	Student    string
	Files      map[string][]byte // relative path → content
}

// Submit stores a new submission's files and read-model document and starts
// its workflow. Submitting an ID that exists starts nothing new: it returns
// created=false and the existing run. If the workflow cannot be started, the
// files and document are removed again, so that a failed submit leaves no
// partial state.
func Submit(ctx context.Context, c client.Client, st *store.Store, sub NewSubmission) (run client.WorkflowRun, created bool, err error) {
	names := make([]string, 0, len(sub.Files))
	for name := range sub.Files {
		if !store.ValidRelPath(name) {
			return nil, false, fmt.Errorf("file %q: %w", name, ErrUnsafePath)
		}
		names = append(names, name)
	}
	in := Input{SubmissionID: sub.ID, Assignment: sub.Assignment, Student: sub.Student}
	created, err = st.CreateSubmission(ctx, store.Submission{
		ID: sub.ID, Assignment: sub.Assignment, Student: sub.Student, Files: names, WorkflowID: WorkflowID(sub.ID),
	})
	if err != nil {
		return nil, false, err
	}
	if !created {
		// Retried or duplicate: make sure its workflow runs, grade nothing twice.
		run, err := Start(ctx, c, in)
		return run, false, err
	}
	undo := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = st.DeleteSubmission(ctx, sub.ID)
	}
	for name, data := range sub.Files {
		if err := st.PutFile(ctx, store.SubmissionFile(sub.ID, name), data); err != nil {
			undo()
			return nil, false, err
		}
	}
	run, err = Start(ctx, c, in)
	if err != nil {
		undo()
		return nil, false, err
	}
	return run, true, nil
}

// ErrUnsafePath rejects file names that would escape their directory.
var ErrUnsafePath = errors.New("unsafe path: must be relative, without '..'")

// zapAdapter lets the Temporal SDK log through zap.
type zapAdapter struct{ zl *zap.SugaredLogger }

// NewZapAdapter returns a Temporal logger that writes to zl.
func NewZapAdapter(zl *zap.Logger) log.Logger {
	return &zapAdapter{zl: zl.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (a *zapAdapter) Debug(msg string, keyvals ...any) { a.zl.Debugw(msg, keyvals...) }
func (a *zapAdapter) Info(msg string, keyvals ...any)  { a.zl.Infow(msg, keyvals...) }
func (a *zapAdapter) Warn(msg string, keyvals ...any)  { a.zl.Warnw(msg, keyvals...) }
func (a *zapAdapter) Error(msg string, keyvals ...any) { a.zl.Errorw(msg, keyvals...) }

// With returns a logger with keyvals added to every entry.
func (a *zapAdapter) With(keyvals ...any) log.Logger { return &zapAdapter{zl: a.zl.With(keyvals...)} }
