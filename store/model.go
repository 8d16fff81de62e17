package store

import (
	"fmt"
	"path"
	"strings"
	"time"
)

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
)

// Status is the state of the grading as a whole.
type Status string

// Statuses.
const (
	StatusPending  Status = "pending"  // still in progress
	StatusGraded   Status = "graded"   // a score was recorded (any Outcome)
	StatusError    Status = "error"    // infrastructure gave up; not charged to the student
	StatusCanceled Status = "canceled" // canceled by staff or the portal
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

// Assignment is a course assignment's grading configuration.
type Assignment struct {
	Name             string    `bson:"_id" json:"name"`
	Title            string    `bson:"title" json:"title"`
	Runtimes         []string  `bson:"runtimes" json:"runtimes"`
	TimeLimitSeconds int       `bson:"time_limit_seconds" json:"time_limit_seconds"`
	MemoryMB         int       `bson:"memory_mb" json:"memory_mb"`
	CPUs             float64   `bson:"cpus" json:"cpus"`
	ForbiddenModules []string  `bson:"forbidden_modules" json:"forbidden_modules"`
	Compare          string    `bson:"compare" json:"compare"`
	Points           float64   `bson:"points" json:"points"`
	Mapper           string    `bson:"mapper" json:"mapper"`
	Reducer          string    `bson:"reducer" json:"reducer"`
	Combiner         string    `bson:"combiner,omitempty" json:"combiner,omitempty"`
	MainClass        string    `bson:"main_class" json:"main_class"`
	WebhookURL       string    `bson:"webhook_url,omitempty" json:"webhook_url,omitempty"` // POSTed each finished submission's result
	InputFiles       []string  `bson:"input_files" json:"input_files"`
	ExpectedFiles    []string  `bson:"expected_files" json:"expected_files"`
	UpdatedAt        time.Time `bson:"updated_at" json:"updated_at"`
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
	if a.Points == 0 {
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

// Validate reports the first invalid field, naming it.
func (a *Assignment) Validate() error {
	switch {
	case !validName(a.Name):
		return fmt.Errorf("name: must be 1-64 characters of a-z, 0-9, '-' or '_'")
	case a.TimeLimitSeconds < 1 || a.TimeLimitSeconds > 3600:
		return fmt.Errorf("time_limit_seconds: must be between 1 and 3600")
	case a.MemoryMB < 256 || a.MemoryMB > 16384:
		return fmt.Errorf("memory_mb: must be between 256 and 16384")
	case a.CPUs <= 0 || a.CPUs > 16:
		return fmt.Errorf("cpus: must be in (0, 16]")
	case a.Compare != CompareSortedLines && a.Compare != CompareExact:
		return fmt.Errorf("compare: must be %q or %q", CompareSortedLines, CompareExact)
	case a.Points <= 0:
		return fmt.Errorf("points: must be positive")
	}
	for _, r := range a.Runtimes {
		if r != RuntimeStreaming && r != RuntimeJar {
			return fmt.Errorf("runtimes: unknown runtime %q", r)
		}
	}
	for _, f := range []struct{ field, name string }{{"mapper", a.Mapper}, {"reducer", a.Reducer}, {"combiner", a.Combiner}} {
		if f.name != "" && !ValidRelPath(f.name) {
			return fmt.Errorf("%s: must be a relative file name", f.field)
		}
	}
	return nil
}

// Allows reports whether the assignment accepts submissions for runtime.
func (a *Assignment) Allows(runtime string) bool {
	for _, r := range a.Runtimes {
		if r == runtime {
			return true
		}
	}
	return false
}

// TestResult is the result of one test case of a submission.
type TestResult struct {
	Name     string  `bson:"name" json:"name"`
	Passed   bool    `bson:"passed" json:"passed"`
	Score    float64 `bson:"score" json:"score"`
	MaxScore float64 `bson:"max_score" json:"max_score"`
	Expected int     `bson:"expected_lines" json:"expected_lines"`
	Matched  int     `bson:"matched_lines" json:"matched_lines"`
	Got      int     `bson:"got_lines" json:"got_lines"`
	Diff     string  `bson:"diff,omitempty" json:"diff,omitempty"`
}

// Times records when a submission reached each stage. The first time wins,
// so retried activities do not move them.
type Times struct {
	Submitted      *time.Time `bson:"submitted,omitempty" json:"submitted,omitempty"`
	SanityStarted  *time.Time `bson:"sanity_started,omitempty" json:"sanity_started,omitempty"`
	Queued         *time.Time `bson:"queued,omitempty" json:"queued,omitempty"`
	ExecuteStarted *time.Time `bson:"execute_started,omitempty" json:"execute_started,omitempty"`
	ExecuteEnded   *time.Time `bson:"execute_ended,omitempty" json:"execute_ended,omitempty"`
	Completed      *time.Time `bson:"completed,omitempty" json:"completed,omitempty"`
}

// Submission is the read model of one submission: what the portal shows.
type Submission struct {
	ID          string         `bson:"_id" json:"id"`
	Assignment  string         `bson:"assignment" json:"assignment"`
	Student     string         `bson:"student" json:"student"`
	Files       []string       `bson:"files" json:"files"`
	WorkflowID  string         `bson:"workflow_id" json:"workflow_id"`
	Stage       Stage          `bson:"stage" json:"stage"`
	Status      Status         `bson:"status" json:"status"`
	Outcome     Outcome        `bson:"outcome,omitempty" json:"outcome,omitempty"`
	Score       float64        `bson:"score" json:"score"`
	MaxScore    float64        `bson:"max_score" json:"max_score"`
	Feedback    string         `bson:"feedback,omitempty" json:"feedback,omitempty"`
	Tests       []TestResult   `bson:"tests,omitempty" json:"tests,omitempty"`
	Attempts    map[string]int `bson:"attempts,omitempty" json:"attempts,omitempty"`
	Times       Times          `bson:"times" json:"times"`
	RunSeconds  float64        `bson:"run_seconds,omitempty" json:"run_seconds,omitempty"`
	UpdatedAt   time.Time      `bson:"updated_at" json:"updated_at"`
	ErrorDetail string         `bson:"error_detail,omitempty" json:"error_detail,omitempty"`
	RegradeOf   string         `bson:"regrade_of,omitempty" json:"regrade_of,omitempty"` // the submission this one regrades
}

// Final is what the record step writes when grading ends.
type Final struct {
	Status      Status
	Outcome     Outcome
	Score       float64
	MaxScore    float64
	Feedback    string
	Tests       []TestResult
	RunSeconds  float64
	ErrorDetail string
}

// File names in GridFS. Each embeds the submission ID or assignment name.

// SubmissionFile names a file of a submission.
func SubmissionFile(id, rel string) string { return "submissions/" + id + "/" + rel }

// SubmissionPrefix is the prefix of all files of a submission.
func SubmissionPrefix(id string) string { return "submissions/" + id + "/" }

// ArtifactFile names a build artifact of a submission (a compiled jar).
func ArtifactFile(id, rel string) string { return "artifacts/" + id + "/" + rel }

// OutputPrefix is the prefix of a submission's job output files.
func OutputPrefix(id string) string { return "outputs/" + id + "/" }

// InputPrefix is the prefix of an assignment's input data.
func InputPrefix(assignment string) string { return "assignments/" + assignment + "/input/" }

// ExpectedPrefix is the prefix of an assignment's expected output.
func ExpectedPrefix(assignment string) string { return "assignments/" + assignment + "/expected/" }

// ValidID reports whether id is usable as a submission ID.
func ValidID(id string) bool { return validName(id) || (len(id) <= 128 && validIDChars(id)) }

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func validIDChars(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s[0] != '.'
}

// ValidRelPath reports whether p is a clean relative path that stays inside
// its directory: no "..", no absolute path, no empty or hidden-parent parts.
func ValidRelPath(p string) bool {
	if p == "" || len(p) > 255 || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	if path.Clean(p) != p {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}
