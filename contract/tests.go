package contract

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Test visibilities: who sees a test's detail before and after the
// assignment's due date. A staff token sees every test in full.
const (
	VisibilityVisible  = "visible"   // students see everything
	VisibilityHidden   = "hidden"    // students see name, score and status only, always
	VisibilityAfterDue = "after_due" // like hidden until due_at, then like visible
)

// Test statuses: how one test of a submission went. Everything except
// TestPassed scores what its comparison gave (0 unless partial credit).
const (
	TestPassed  = "passed"
	TestFailed  = "failed"     // ran; wrong answer or a failed check
	TestTimeout = "time_limit" // killed at its time limit
	TestMemory  = "memory_limit"
	TestCrashed = "runtime_error" // the job failed
	TestOutput  = "output_limit"
	TestNotRun  = "not_run" // the job died before reaching it
)

// FileRef is one stored file of an assignment: its name in the directory
// the job sees and the GridFS ID of the file holding it. Files stored by
// content (named BlobName(SHA256)) are shared
// by every test and assignment that has them, and cached on execute hosts
// by SHA256.
type FileRef struct {
	Name   string `json:"name"`
	Blob   string `json:"blob"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
}

// BlobPrefix is the GridFS name prefix of files stored by content hash.
const BlobPrefix = "blobs/sha256/"

// BlobName is the GridFS name of the file with this SHA-256 (hex).
func BlobName(sha string) string { return BlobPrefix + sha }

// CounterCheck is a condition on one of the job's Hadoop counters, e.g.
// COMBINE_INPUT_RECORDS > 0: the proof that a combiner ran. Counters are
// named as in org.apache.hadoop.mapreduce.TaskCounter.
type CounterCheck struct {
	Counter string `json:"counter"`
	Op      string `json:"op"` // one of > >= == != <= <
	Value   int64  `json:"value"`
}

var counterName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// Holds reports whether value satisfies the check.
func (c CounterCheck) Holds(value int64) bool {
	switch c.Op {
	case ">":
		return value > c.Value
	case ">=":
		return value >= c.Value
	case "==":
		return value == c.Value
	case "!=":
		return value != c.Value
	case "<=":
		return value <= c.Value
	case "<":
		return value < c.Value
	}
	return false
}

func (c CounterCheck) String() string { return fmt.Sprintf("%s %s %d", c.Counter, c.Op, c.Value) }

// TestSpec is one test case of an assignment.
type TestSpec struct {
	Name       string  `json:"name"`
	Points     float64 `json:"points"`
	Visibility string  `json:"visibility"`
	// Input is a directory of the assignment upload (relative path), or
	// Dataset names a stored dataset (PUT /v1/datasets/{name}); the service
	// resolves either into InputFiles.
	Input    string `json:"input,omitempty"`
	Dataset  string `json:"dataset,omitempty"`
	Expected string `json:"expected"`
	Compare  string `json:"compare,omitempty"` // default: the assignment's
	// Reducers, if > 1, runs the job with that many reduce tasks: a reducer
	// that assumes it sees every key fails, and so does a driver that
	// hard-codes one reduce task.
	Reducers         int            `json:"reducers,omitempty"`
	Counters         []CounterCheck `json:"counters,omitempty"`
	TimeLimitSeconds int            `json:"time_limit_seconds,omitempty"` // default: the assignment's
	// Filled in by the service.
	InputFiles    []FileRef `json:"input_files,omitempty"`
	ExpectedFiles []FileRef `json:"expected_files,omitempty"`
}

// InputBytes is the size of the test's input.
func (t TestSpec) InputBytes() int64 {
	var n int64
	for _, f := range t.InputFiles {
		n += f.Size
	}
	return n
}

// Released reports whether students see this test's detail at now.
func (t TestSpec) Released(dueAt *time.Time, now time.Time) bool {
	switch t.Visibility {
	case VisibilityVisible, "":
		return true
	case VisibilityAfterDue:
		return dueAt != nil && !now.Before(*dueAt)
	}
	return false
}

// TestList is the assignment's tests. An assignment of the single-test
// form (no tests, one input and one expected output) has one visible
// test, "output", worth all its points.
func (a *Assignment) TestList() []TestSpec {
	if len(a.Tests) > 0 {
		return a.Tests
	}
	t := TestSpec{Name: "output", Points: a.Points, Visibility: VisibilityVisible, Compare: a.Compare,
		TimeLimitSeconds: a.TimeLimitSeconds}
	for _, n := range a.InputFiles {
		t.InputFiles = append(t.InputFiles, FileRef{Name: strings.TrimPrefix(n, legacyInputPrefix(a.Name)), Blob: n})
	}
	for _, n := range a.ExpectedFiles {
		t.ExpectedFiles = append(t.ExpectedFiles, FileRef{Name: n, Blob: n})
	}
	return []TestSpec{t}
}

// legacyInputPrefix is where single-test assignments stored before tests
// existed keep their input (store.InputPrefix).
func legacyInputPrefix(name string) string { return "assignments/" + name + "/input/" }

// TotalTimeLimit bounds the whole job container: every test's limit.
func (a *Assignment) TotalTimeLimit() time.Duration {
	var s int
	for _, t := range a.TestList() {
		s += t.timeLimit(a)
	}
	return time.Duration(s) * time.Second
}

// TestTimeLimit is test t's time limit.
func (a *Assignment) TestTimeLimit(t TestSpec) time.Duration {
	return time.Duration(t.timeLimit(a)) * time.Second
}

func (t TestSpec) timeLimit(a *Assignment) int {
	if t.TimeLimitSeconds > 0 {
		return t.TimeLimitSeconds
	}
	return a.TimeLimitSeconds
}

// CompareMode is test t's comparison mode.
func (a *Assignment) CompareMode(t TestSpec) string {
	if t.Compare != "" {
		return t.Compare
	}
	return a.Compare
}

// validateTests checks the tests of an assignment in the tests form.
func (a *Assignment) validateTests() error {
	bad := func(i int, field, format string, args ...any) error {
		return &FieldError{Field: fmt.Sprintf("tests[%d].%s", i, field), Reason: fmt.Sprintf(format, args...)}
	}
	if len(a.Tests) > 50 {
		return &FieldError{Field: "tests", Reason: "at most 50 tests"}
	}
	seen := map[string]bool{}
	for i, t := range a.Tests {
		switch {
		case !ValidName(t.Name):
			return bad(i, "name", "must be 1-64 characters of a-z, 0-9, '-' or '_'")
		case seen[t.Name]:
			return bad(i, "name", "%q is used twice", t.Name)
		case t.Points < 0:
			return bad(i, "points", "must not be negative")
		case !slices.Contains([]string{VisibilityVisible, VisibilityHidden, VisibilityAfterDue}, t.Visibility):
			return bad(i, "visibility", "must be %q, %q or %q", VisibilityVisible, VisibilityHidden, VisibilityAfterDue)
		case t.Visibility == VisibilityAfterDue && a.DueAt == nil:
			return bad(i, "visibility", "after_due needs the assignment's due_at")
		case (t.Input == "") == (t.Dataset == "") && len(t.InputFiles) == 0:
			return bad(i, "input", "give exactly one of input (a directory) and dataset")
		case t.Input != "" && !ValidRelPath(t.Input):
			return bad(i, "input", "must be a relative directory")
		case t.Dataset != "" && !ValidName(t.Dataset):
			return bad(i, "dataset", "must be a dataset name")
		case t.Expected == "" && len(t.ExpectedFiles) == 0:
			return bad(i, "expected", "missing")
		case t.Expected != "" && !ValidRelPath(t.Expected):
			return bad(i, "expected", "must be a relative directory")
		case t.Compare != "" && t.Compare != CompareSortedLines && t.Compare != CompareExact:
			return bad(i, "compare", "must be %q or %q", CompareSortedLines, CompareExact)
		case t.Reducers < 0 || t.Reducers > 16:
			return bad(i, "reducers", "must be between 1 and 16")
		case t.TimeLimitSeconds < 0 || t.TimeLimitSeconds > 3600:
			return bad(i, "time_limit_seconds", "must be between 1 and 3600")
		}
		seen[t.Name] = true
		for k, c := range t.Counters {
			switch {
			case !counterName.MatchString(c.Counter):
				return bad(i, fmt.Sprintf("counters[%d].counter", k), "must be a counter name such as COMBINE_INPUT_RECORDS")
			case !slices.Contains([]string{">", ">=", "==", "!=", "<=", "<"}, c.Op):
				return bad(i, fmt.Sprintf("counters[%d].op", k), "must be one of > >= == != <= <")
			}
		}
	}
	if a.TotalTimeLimit() > 4*time.Hour {
		return &FieldError{Field: "tests", Reason: "the tests' time limits add up to more than 4 hours"}
	}
	return nil
}

// TestRun is how one test of a submission ran and scored. The execute
// step reports each as it finishes (in its heartbeat, so that a retry
// skips it, and in the read model); the compare step adds them up.
type TestRun struct {
	Result  TestResult
	Outputs []string `json:",omitempty"` // GridFS names of kept part files (staff)
}

// GraderVersion is what graded a submission: recorded with every score,
// so that a regrade's report can say what changed.
type GraderVersion struct {
	AssignmentRevision int64  `json:"assignment_revision"` // the assignment's updated_at, Unix ms
	Image              string `json:"image"`
	ImageID            string `json:"image_id,omitempty"` // the image's content digest on the host that ran it
}
