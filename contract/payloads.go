package contract

import (
	"fmt"
	"slices"
	"time"
)

// The payloads below travel through Temporal as JSON. Histories recorded
// by earlier versions decode into them (workflows/testdata): a field may be
// added, but a field or JSON name must not be renamed or removed.

// Stage is where a submission is in its workflow. The values are what the
// portal shows students, so they are stable API.
type Stage string

// Stages, in order.
const (
	StageSubmitted Stage = "submitted" // accepted, workflow not yet picked up
	StageSanity    Stage = "sanity"    // compiling and checking imports
	StageQueued    Stage = "queued"    // waiting for an execution slot
	StageRunning   Stage = "running"   // running in a Hadoop container
	StageComparing Stage = "comparing" // comparing output with the expected one
	StageRecording Stage = "recording" // writing the score
	StageDone      Stage = "done"      // finished, whatever the outcome
	// StageQuarantined: its attempts killed workers too often; it waits
	// for staff to release it (then it queues again). Not in the order
	// above: a submission leaves it backwards.
	StageQuarantined Stage = "quarantined"
)

// Status is the state of the grading as a whole.
type Status string

// Statuses.
const (
	StatusPending  Status = "pending"  // still in progress
	StatusGraded   Status = "graded"   // a score was recorded (any Outcome)
	StatusError    Status = "error"    // infrastructure gave up; not charged to the student
	StatusCanceled Status = "canceled" // canceled by staff or the portal
	// StatusSuperseded: the student submitted again for an assignment with
	// supersede on before this one ran; never executed, not charged.
	StatusSuperseded Status = "superseded"
	// StatusQuarantined: held for staff after its attempts killed workers
	// GRADEFLOW_QUARANTINE_AFTER times (not final: a release retries it).
	StatusQuarantined Status = "quarantined"
)

// Outcome is the verdict on a graded submission. Every outcome except
// OutcomePassed is the student's, and is scored.
type Outcome string

// Outcomes.
const (
	OutcomePassed            Outcome = "passed"
	OutcomeWrongAnswer       Outcome = "wrong_answer"
	OutcomeSyntaxError       Outcome = "syntax_error"
	OutcomeForbiddenImport   Outcome = "forbidden_import"
	OutcomeCompileError      Outcome = "compile_error"
	OutcomeInvalidSubmission Outcome = "invalid_submission"
	OutcomeRuntimeError      Outcome = "runtime_error"
	OutcomeTimeLimit         Outcome = "time_limit_exceeded"
	OutcomeMemoryLimit       Outcome = "memory_limit_exceeded"
	OutcomeOutputLimit       Outcome = "output_limit_exceeded"
)

// Runtimes a submission can use.
const (
	RuntimeStreaming = "streaming" // Python mapper and reducer through Hadoop streaming
	RuntimeJar       = "jar"       // Java sources or a jar, run with RunJar
)

// Comparison modes.
const (
	CompareSortedLines = "sorted-lines" // partial credit for matching lines, order ignored
	CompareExact       = "exact"        // all or nothing, order ignored
)

// Input starts the grading of one submission. The submission's files are in
// GridFS already; only their owner's IDs travel through Temporal.
type Input struct {
	SubmissionID string
	Assignment   string
	Student      string
	// HeartbeatTimeout bounds how long a dead execute worker goes unnoticed.
	// Zero means DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// ExecuteAttempts bounds infrastructure retries of the execute step
	// (each worker crash is one). Zero means DefaultExecuteAttempts.
	ExecuteAttempts int32
	// Lane is LaneLive (empty) or LaneRegrade: it sets the workflow's
	// Temporal priority and fairness key (PriorityOf).
	Lane string `json:",omitempty"`
	// Files are the submission's file names (relative), as the intake
	// stored them, so that the sanity step fetches them at once. Empty in
	// workflows started before they were passed: the step reads them from
	// the submission's document.
	Files []string `json:",omitempty"`
}

// Defaults for Input's optional fields.
const (
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultExecuteAttempts  = 8
)

// Request identifies a submission to grade: the Sanity activity's input.
type Request struct {
	SubmissionID string
	Assignment   string
	Student      string
	WorkflowID   string
	Files        []string `json:",omitempty"` // Input.Files
}

// Assignment is a course assignment's grading configuration. A snapshot of
// it travels in Plan, so that a later edit does not change a running
// grading; the store keeps it as a document of its own.
type Assignment struct {
	Name             string   `json:"name"`
	Title            string   `json:"title"`
	Runtimes         []string `json:"runtimes"`
	TimeLimitSeconds int      `json:"time_limit_seconds"`
	MemoryMB         int      `json:"memory_mb"`
	CPUs             float64  `json:"cpus"`
	ForbiddenModules []string `json:"forbidden_modules"`
	Compare          string   `json:"compare"`
	Points           float64  `json:"points"`
	Mapper           string   `json:"mapper"`
	Reducer          string   `json:"reducer"`
	Combiner         string   `json:"combiner,omitempty"`
	MainClass        string   `json:"main_class"`
	WebhookURL       string   `json:"webhook_url,omitempty"` // POSTed each finished submission's result
	// ShowExpected lets feedback quote output lines: the expected lines a
	// submission missed and its own unexpected ones. Off by default, so
	// that the grader is no oracle for the expected output (or, through a
	// job that echoes it, for the input).
	ShowExpected bool `json:"show_expected,omitempty"`
	// Tests are the assignment's test cases. Without them the assignment
	// is of the single-test form: InputFiles and ExpectedFiles, one test.
	Tests []TestSpec `json:"tests,omitempty"`
	// DueAt releases after_due tests to students.
	DueAt *time.Time `json:"due_at,omitempty"`
	// Image is the runtime image the jobs run in, one of the operator's
	// allow-list (GRADEFLOW_RUNTIME_IMAGES); empty: the default image.
	Image string `json:"image,omitempty"`
	// Supersede: a student's newer submission cancels their older ones
	// that have not started executing; those are recorded as superseded.
	Supersede     bool      `json:"supersede,omitempty"`
	InputFiles    []string  `json:"input_files,omitempty"`
	ExpectedFiles []string  `json:"expected_files,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"` // its version: caches are keyed by it
}

// Defaults fills in unset fields with gradeflow's defaults.
func (a *Assignment) Defaults() {
	if len(a.Runtimes) == 0 {
		a.Runtimes = []string{RuntimeStreaming, RuntimeJar}
	}
	if a.TimeLimitSeconds == 0 {
		a.TimeLimitSeconds = 60
	}
	if a.MemoryMB == 0 {
		a.MemoryMB = 1024
	}
	if a.CPUs == 0 {
		a.CPUs = 1
	}
	if a.Compare == "" {
		a.Compare = CompareSortedLines
	}
	if len(a.Tests) > 0 {
		a.Points = 0
		for i := range a.Tests {
			a.Points += a.Tests[i].Points
			if a.Tests[i].Visibility == "" {
				a.Tests[i].Visibility = VisibilityVisible
			}
		}
	}
	if a.Points == 0 && len(a.Tests) == 0 {
		a.Points = 100
	}
	if a.Mapper == "" {
		a.Mapper = "mapper.py"
	}
	if a.Reducer == "" {
		a.Reducer = "reducer.py"
	}
	if a.MainClass == "" {
		a.MainClass = "WordCount"
	}
}

// FieldError is an invalid field of a payload or configuration, named as
// its JSON field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Validate reports the first invalid field as a *FieldError.
func (a *Assignment) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case !ValidName(a.Name):
		return bad("name", "must be 1-64 characters of a-z, 0-9, '-' or '_'")
	case a.TimeLimitSeconds < 1 || a.TimeLimitSeconds > 3600:
		return bad("time_limit_seconds", "must be between 1 and 3600")
	case a.MemoryMB < 256 || a.MemoryMB > 16384:
		return bad("memory_mb", "must be between 256 and 16384")
	case a.CPUs <= 0 || a.CPUs > 16:
		return bad("cpus", "must be in (0, 16]")
	case a.Compare != CompareSortedLines && a.Compare != CompareExact:
		return bad("compare", "must be %q or %q", CompareSortedLines, CompareExact)
	case a.Points <= 0:
		return bad("points", "must be positive")
	case a.Image != "" && !validImage(a.Image):
		return bad("image", "must be an image reference such as gradeflow/hadoop-extra:1")
	}
	if err := a.validateTests(); err != nil {
		return err
	}
	for _, r := range a.Runtimes {
		if r != RuntimeStreaming && r != RuntimeJar {
			return bad("runtimes", "unknown runtime %q", r)
		}
	}
	for _, f := range []struct{ field, name string }{{"mapper", a.Mapper}, {"reducer", a.Reducer}, {"combiner", a.Combiner}} {
		if f.name != "" && !ValidRelPath(f.name) {
			return bad(f.field, "must be a relative file name")
		}
	}
	return nil
}

// Allows reports whether the assignment accepts submissions for runtime.
func (a *Assignment) Allows(runtime string) bool { return slices.Contains(a.Runtimes, runtime) }

// Plan is what the sanity check hands to execution: a snapshot of the
// assignment's configuration and how to run the submission.
type Plan struct {
	Request
	Config  Assignment
	Runtime string   // RuntimeStreaming or RuntimeJar
	Files   []string // the submission's files, relative
	Jar     string   // GridFS name of the compiled jar (jar runtime)
}

// Execution is the result of running a submission's job.
type Execution struct {
	Outputs    []string // GridFS names of the part-* files (single-test runs before tests existed)
	RunSeconds float64  // container wall time
	// Tests are the per-test results, scored as each test finished.
	Tests  []TestRun     `json:",omitempty"`
	Grader GraderVersion `json:",omitempty"`
	// Runs are the execute step's attempts, the dead ones included: which
	// worker on which host ran each, so that the history has them all.
	Runs []Run `json:",omitempty"`
}

// Run is one attempt of a submission's execute step, as the execution
// tracker records it.
type Run struct {
	ActivityID string     `json:"activity_id"` // the scheduled step; a release schedules a new one
	Attempt    int        `json:"attempt"`
	Worker     string     `json:"worker"` // the worker's Temporal identity (pid@host)
	Host       string     `json:"host"`
	Started    time.Time  `json:"started"`
	Ended      *time.Time `json:"ended,omitempty"` // nil: running, or its worker died
	End        RunEnd     `json:"end,omitempty"`
}

// RunEnd is how an attempt of the execute step ended.
type RunEnd string

// Run ends.
const (
	RunCompleted   RunEnd = "completed"       // the job ran and its result is in
	RunStudent     RunEnd = "student_failure" // the job ended with a student outcome
	RunFailed      RunEnd = "failed"          // an infrastructure failure, retried
	RunCanceled    RunEnd = "canceled"        // canceled, or handed back by a draining worker
	RunSuperseded  RunEnd = "superseded"      // declined: a newer submission supersedes it
	RunQuarantined RunEnd = "quarantined"     // declined: earlier attempts killed their workers
)

// Dead reports whether the run's worker died under it: an earlier attempt
// of the same step (attempt below current) that never ended.
func (r Run) Dead(activityID string, current int) bool {
	return r.ActivityID == activityID && r.Attempt < current && r.Ended == nil
}

// CompareInput is what the compare step needs.
type CompareInput struct {
	Plan      Plan
	Execution Execution
}

// TestResult is the result of one test case of a submission.
type TestResult struct {
	Name     string  `json:"name"`
	Passed   bool    `json:"passed"`
	Score    float64 `json:"score"`
	MaxScore float64 `json:"max_score"`
	Expected int     `json:"expected_lines"`
	Matched  int     `json:"matched_lines"`
	Got      int     `json:"got_lines"`
	Diff     string  `json:"diff,omitempty"`
	// Set by multi-test runs.
	Status     string           `json:"status,omitempty"` // Test*
	Visibility string           `json:"visibility,omitempty"`
	Seconds    float64          `json:"seconds,omitempty"`
	Counters   map[string]int64 `json:"counters,omitempty"`
	Feedback   string           `json:"feedback,omitempty"`
	LogTail    string           `json:"log_tail,omitempty"` // staff only
}

// Grade is how a grading ended, or part of it: the one type of outcome,
// score and feedback. A student failure carries one (Outcome, Feedback,
// MaxScore) as its details; Compare returns one (with Score and Tests); the
// workflow records one (with Status and RunSeconds) and returns it in its
// Result.
type Grade struct {
	Status      Status
	Outcome     Outcome
	Score       float64
	MaxScore    float64
	Feedback    string
	Tests       []TestResult
	RunSeconds  float64
	ErrorDetail string        // an infrastructure error's text, for staff
	Grader      GraderVersion `json:",omitempty"`
}

// RecordRequest is the final state of a submission to record.
type RecordRequest struct {
	Request
	Final Grade
}

// Recorded says what follows a record step.
type Recorded struct {
	// Webhook is true when the assignment has a webhook URL to deliver the
	// result to, so that the workflow schedules a delivery only then.
	Webhook bool
}

// WebhookRequest names a finished submission whose result to deliver to
// its assignment's webhook URL.
type WebhookRequest struct {
	SubmissionID string
	Assignment   string
}

// StageInfo answers QueryStage.
type StageInfo struct {
	Stage Stage
	Since time.Time
	// Runs are the execute attempts that signalled their start (SignalRun).
	Runs []Run `json:",omitempty"`
}

// Result is the submission workflow's result: its submission and grade.
type Result struct {
	SubmissionID string
	Grade
}

// RegradeAllInput starts the regrade-all workflow of a run that the intake
// has planned and stored: the run's items, each with its reserved regrade
// ID, are in the store; only the run's ID travels.
type RegradeAllInput struct {
	RunID      string
	Assignment string // for the workflow's summary and fairness key
	Items      int    // how many regrades the run planned, for the summary
}

// StartRegradesRequest is the StartRegrades activity's input.
type StartRegradesRequest struct {
	RunID string
}

// RegradesStarted is how far the StartRegrades activity got: its heartbeat
// details while it runs (a retried attempt resumes at Next) and its result.
type RegradesStarted struct {
	Next    int // index of the first item not yet handled
	Started int // regrades started (or found started) by this activity
	Refused int // items that can never start: recorded with their error
}
