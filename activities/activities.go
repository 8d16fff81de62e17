// Package activities implements the steps that grade a submission — sanity
// check, execute, compare, record, webhook — and the step that starts a
// regrade-all's planned regrades, as Temporal activities. Each is a method
// on Activities, which depends on small interfaces (Files, Submissions,
// Sandbox, Regrades) that the worker fills with the MongoDB store, the
// Docker sandbox and the intake, and tests with fakes. The worker
// registers each method under its name in package contract.
//
// Failures come in two kinds. A student failure (a syntax error, a wrong
// answer, a time limit) is final: it is returned as a non-retryable
// application error of type contract.StudentFailure, and the workflow
// scores it. Anything else (Docker or MongoDB unreachable, a worker dying)
// is an infrastructure failure: Temporal retries it and it is never charged
// to the student.
package activities

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/gradeflow/gradeflow/activities/checkers"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// Config holds the limits and locations the activities work with.
type Config struct {
	Image           string        // Hadoop runtime image
	WorkDir         string        // host directory for per-attempt scratch dirs and the input cache
	MaxSubmission   int64         // bytes of submission files fetched
	MaxInput        int64         // bytes of one assignment input fetched (a file or dataset; a single-test input directory in all)
	InputCacheBytes int64         // bytes of assignment input kept on the host, least recently used evicted
	MaxOutput       int64         // bytes of job output kept (the container's stdout)
	MaxExpected     int64         // bytes of expected output read
	StderrBytes     int64         // bytes of container stderr kept
	ScratchFraction float64       // share of the memory limit given to the /scratch tmpfs
	PidsLimit       int64         // processes per container
	SanityTimeout   time.Duration // wall-clock limit of a sanity container
	HeartbeatEvery  time.Duration // how often execute heartbeats
	NotifyTimeout   time.Duration // bound on telling the workflow a job started
	RuntimeImages   []string      // images an assignment may name besides Image
	// CloseRunFor bounds how long an execute attempt retries writing its
	// run's end to the tracker (MongoDB unreachable) before it gives up.
	CloseRunFor time.Duration
	// QuarantineAfter is how many execute attempts of a submission may die
	// with their worker before it is quarantined; 0: never.
	QuarantineAfter int
}

// DefaultConfig returns limits suitable for course-sized jobs.
func DefaultConfig() Config {
	return Config{
		Image:           "gradeflow/hadoop:dev",
		WorkDir:         filepath.Join(os.TempDir(), "gradeflow"),
		MaxSubmission:   16 << 20,
		MaxInput:        4 << 30, // the API's default GRADEFLOW_MAX_DATASET: what it accepts can be graded
		InputCacheBytes: 8 << 30,
		MaxOutput:       16 << 20,
		MaxExpected:     64 << 20,
		StderrBytes:     64 << 10,
		ScratchFraction: 0.5,
		PidsLimit:       256,
		SanityTimeout:   60 * time.Second,
		HeartbeatEvery:  time.Second,
		NotifyTimeout:   5 * time.Second,
		CloseRunFor:     time.Minute,
		QuarantineAfter: 3,
	}
}

// Files is the file store (GridFS in production): submissions, input data,
// expected and actual output, build artifacts.
type Files interface {
	PutFile(ctx context.Context, name string, data []byte) error
	ReadFile(ctx context.Context, name string, max int64) ([]byte, error)
	FetchFiles(ctx context.Context, prefix string, rels []string, dir string, max int64) error
	// FetchBlob downloads one file to a host path, streaming.
	FetchBlob(ctx context.Context, name, dst string, max int64) (int64, error)
}

// Submissions is the submissions read model and the assignments they are
// graded against.
type Submissions interface {
	Assignment(ctx context.Context, name string) (contract.Assignment, error)
	Submission(ctx context.Context, id string) (store.Submission, error)
	MarkStage(ctx context.Context, id string, m store.Mark) error
	MarkExecuteEnded(ctx context.Context, id string, at time.Time) error
	// ClaimRun starts an execute attempt in the execution tracker (and
	// moves the submission to running); CloseRun ends it.
	ClaimRun(ctx context.Context, id string, r contract.Run, quarantineAfter int) (store.ClaimResult, error)
	CloseRun(ctx context.Context, id string, r contract.Run) error
	// MarkTest records one finished test of a job that still runs.
	MarkTest(ctx context.Context, id string, t contract.TestResult) error
	Record(ctx context.Context, id string, owner store.Submission, g contract.Grade, at time.Time) error
}

// Sandbox runs single-use containers (the Docker engine in production).
type Sandbox interface {
	Run(ctx context.Context, spec sandbox.Spec) (sandbox.Result, error)
	ListManaged(ctx context.Context) ([]sandbox.Managed, error)
	Remove(ctx context.Context, id string) error
}

// Checkers checks a submission in a warm, sandboxed checker container.
type Checkers interface {
	Check(ctx context.Context, req checkers.Request) (checkers.Response, error)
}

// Notifier tells a workflow that its submission reached a stage the
// workflow cannot observe itself (its execute activity starting).
type Notifier func(ctx context.Context, workflowID string, stage contract.Stage) error

// Activities grades submissions. Register its methods with a worker under
// the contract.Activity* names.
type Activities struct {
	Files       Files
	Submissions Submissions
	Sandbox     Sandbox // needed by Sanity and Execute only
	// Checkers, if set, answers sanity checks with warm checker containers
	// (a *checkers.Pool); Sanity falls back to a container of its own when
	// it cannot.
	Checkers Checkers
	Config   Config
	// Notify, if set, signals the workflow when its job starts. It is best
	// effort: the read model in the store is authoritative.
	Notify Notifier
	// NotifyRun, if set, signals the workflow each execute attempt's Run
	// as it starts (best effort, like Notify), so that its history names
	// the worker and host of every attempt.
	NotifyRun func(ctx context.Context, workflowID string, r contract.Run) error
	// PreviousTimedOut, if set, tells from Temporal's record of the
	// workflow whether the attempt before the running one of activity
	// activityID timed out (its worker stopped heartbeating: it died or
	// hung) rather than ending with a failure it reported itself. An
	// execute attempt asks it about a predecessor whose run was left open,
	// and closes that run when it did not time out, so that only attempts
	// Temporal timed out count toward quarantine.
	PreviousTimedOut func(ctx context.Context, workflowID, activityID string) (bool, error)
	// HTTP delivers webhooks; build it with webhook.NewClient so that every
	// delivery is signed. Without it, Webhook fails for assignments that
	// have a webhook URL.
	HTTP *http.Client
	// NamespaceID is the ID of the Temporal namespace this worker serves. It
	// labels every container (sandbox.LabelNamespace), so that another
	// stack's janitor on the same engine leaves them alone.
	NamespaceID string
	// Worker and Host name this worker process (its Temporal identity) and
	// its host in the execution tracker.
	Worker, Host string
	// Regrades starts the planned regrades of regrade-all runs
	// (StartRegrades, on the grade queue).
	Regrades Regrades

	inputs   inputCache
	jobs     jobHandoff
	prefetch prefetchCache
	expected expectedCache
	// recordHeartbeat is activity.RecordHeartbeat unless a test watches it.
	recordHeartbeat func(ctx context.Context, details ...any)
}

// notify calls Notify concurrently with the step and returns a wait
// function that the step calls before it returns, so that the signal never
// delays the job and never outlives the activity. A failed signal is logged:
// the stage is in the read model already.
func (a *Activities) notify(ctx context.Context, workflowID string, stage contract.Stage) (wait func()) {
	if a.Notify == nil {
		return func() {}
	}
	return a.signal(ctx, func(ctx context.Context) error {
		err := a.Notify(ctx, workflowID, stage)
		if err != nil {
			activity.GetLogger(ctx).Warn("stage signal not delivered", "workflow_id", workflowID, "stage", stage, "error", err)
		}
		return err
	})
}

// notifyRun sends r to the workflow concurrently with the step, like
// notify, and returns the wait the step calls before it returns.
func (a *Activities) notifyRun(ctx context.Context, workflowID, id string, r contract.Run) (wait func()) {
	if a.NotifyRun == nil {
		return func() {}
	}
	return a.signal(ctx, func(ctx context.Context) error {
		log := activity.GetLogger(ctx)
		if err := a.NotifyRun(ctx, workflowID, r); err != nil {
			log.Warn("run signal not delivered", "workflow_id", workflowID, "error", err)
			return err
		}
		log.Info("execute run signalled", "submission_id", id, "attempt", r.Attempt)
		return nil
	})
}

// signal runs send in its own goroutine under the configured notify
// timeout, detached from the step's cancellation, and returns the wait
// that joins it. send logs its own outcome.
func (a *Activities) signal(ctx context.Context, send func(context.Context) error) (wait func()) {
	timeout := a.Config.NotifyTimeout
	if timeout <= 0 {
		timeout = DefaultConfig().NotifyTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		_ = send(ctx)
	})
	return wg.Wait
}

// keepAlive heartbeats every HeartbeatEvery, with details (a phase name,
// or the progress a retry resumes from), until the returned stop is called
// (at most once takes effect). Steps run it around their network work (fetching files, downloading input, storing outputs), so that a
// slow store never outlasts the heartbeat timeout while a dead worker is
// still noticed within it: the heartbeats end with the worker.
func (a *Activities) keepAlive(ctx context.Context, details any) (stop func()) {
	return a.beatEvery(ctx, func() any { return details })
}

// beatEvery heartbeats every HeartbeatEvery with the details details
// returns, until the returned stop is called (at most once takes effect)
// or ctx ends.
func (a *Activities) beatEvery(ctx context.Context, details func() any) (stop func()) {
	every := a.Config.HeartbeatEvery
	if every <= 0 {
		every = DefaultConfig().HeartbeatEvery
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			a.beat(ctx, details())
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// lastBeat remembers an attempt's latest heartbeat details, so that work
// that outlives the attempt's step (closing its run) can keep the attempt
// alive by repeating them, without replacing the progress a retried
// attempt resumes from (Temporal keeps only the latest details).
type lastBeat struct {
	mu      sync.Mutex
	details any
	set     bool
}

type lastBeatKey struct{}

// withLastBeat returns ctx with a lastBeat that every heartbeat of the
// attempt (Activities.beat) records into.
func withLastBeat(ctx context.Context) (context.Context, *lastBeat) {
	b := &lastBeat{}
	return context.WithValue(ctx, lastBeatKey{}, b), b
}

func (b *lastBeat) put(details any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.details, b.set = details, true
}

// get returns the latest details; ok is false before any heartbeat.
func (b *lastBeat) get() (details any, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.details, b.set
}
