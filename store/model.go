package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestResult is the read model of one test case of a submission.
type TestResult struct {
	Name     string  `bson:"name" json:"name"`
	Passed   bool    `bson:"passed" json:"passed"`
	Score    float64 `bson:"score" json:"score"`
	MaxScore float64 `bson:"max_score" json:"max_score"`
	Expected int     `bson:"expected_lines" json:"expected_lines"`
	Matched  int     `bson:"matched_lines" json:"matched_lines"`
	Got      int     `bson:"got_lines" json:"got_lines"`
	Diff     string  `bson:"diff,omitempty" json:"diff,omitempty"`
	// Multi-test runs.
	Status     string           `bson:"status,omitempty" json:"status,omitempty"`
	Visibility string           `bson:"visibility,omitempty" json:"visibility,omitempty"`
	Seconds    float64          `bson:"seconds,omitempty" json:"seconds,omitempty"`
	Counters   map[string]int64 `bson:"counters,omitempty" json:"counters,omitempty"`
	Feedback   string           `bson:"feedback,omitempty" json:"feedback,omitempty"`
	LogTail    string           `bson:"log_tail,omitempty" json:"log_tail,omitempty"`
}

// Grader is what graded a submission (contract.GraderVersion).
type Grader struct {
	AssignmentRevision int64  `bson:"assignment_revision" json:"assignment_revision"`
	Image              string `bson:"image" json:"image"`
	ImageID            string `bson:"image_id,omitempty" json:"image_id,omitempty"`
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
	ID          string           `bson:"_id" json:"id"`
	Assignment  string           `bson:"assignment" json:"assignment"`
	Student     string           `bson:"student" json:"student"`
	Files       []string         `bson:"files" json:"files"`
	WorkflowID  string           `bson:"workflow_id" json:"workflow_id"`
	Stage       contract.Stage   `bson:"stage" json:"stage"`
	Status      contract.Status  `bson:"status" json:"status"`
	Outcome     contract.Outcome `bson:"outcome,omitempty" json:"outcome,omitempty"`
	Score       float64          `bson:"score" json:"score"`
	MaxScore    float64          `bson:"max_score" json:"max_score"`
	Feedback    string           `bson:"feedback,omitempty" json:"feedback,omitempty"`
	Tests       []TestResult     `bson:"tests,omitempty" json:"tests,omitempty"`
	Attempts    map[string]int   `bson:"attempts,omitempty" json:"attempts,omitempty"`
	Times       Times            `bson:"times" json:"times"`
	RunSeconds  float64          `bson:"run_seconds,omitempty" json:"run_seconds,omitempty"`
	UpdatedAt   time.Time        `bson:"updated_at" json:"updated_at"`
	ErrorDetail string           `bson:"error_detail,omitempty" json:"error_detail,omitempty"`
	RegradeOf   string           `bson:"regrade_of,omitempty" json:"regrade_of,omitempty"` // the submission this one regrades
	// LiveTests are the results of the tests that have finished while the
	// job still runs, by test name; Tests replaces them once it is recorded.
	LiveTests map[string]TestResult `bson:"live_tests,omitempty" json:"-"`
	Grader    *Grader               `bson:"grader,omitempty" json:"grader,omitempty"`
	Lane      string                `bson:"lane,omitempty" json:"lane,omitempty"`
	// Regrades counts the regrade numbers reserved for this submission
	// (NextRegrade): its regrades are "<id>-r1" to "<id>-r<Regrades>", those
	// that were made.
	Regrades int `bson:"regrades,omitempty" json:"-"`
	// Runs is the execution tracker: every attempt of the execute step,
	// by RunKey, with the worker and host that ran it and how it ended.
	// RunList gives them in order; staff see them in the API.
	Runs map[string]Run `bson:"runs,omitempty" json:"-"`
	// SupersededBy is the newer submission that superseded this one.
	SupersededBy string `bson:"superseded_by,omitempty" json:"superseded_by,omitempty"`
	// Uploading is set while the request that created the submission stores
	// its files; only that request starts the workflow, once they are all in.
	Uploading bool `bson:"uploading,omitempty" json:"-"`
}

// Run is one attempt of the execute step in the tracker (contract.Run).
type Run struct {
	ActivityID string          `bson:"activity_id" json:"activity_id"`
	Attempt    int             `bson:"attempt" json:"attempt"`
	Worker     string          `bson:"worker" json:"worker"`
	Host       string          `bson:"host" json:"host"`
	Started    time.Time       `bson:"started" json:"started"`
	Ended      *time.Time      `bson:"ended,omitempty" json:"ended,omitempty"`
	End        contract.RunEnd `bson:"end,omitempty" json:"end,omitempty"`
}

// RunKey is a run's key in Submission.Runs: its step and attempt.
func RunKey(activityID string, attempt int) string {
	return fmt.Sprintf("s%s-a%d", activityID, attempt)
}

// RunList returns the submission's runs in order: by start, then step and attempt.
func (s Submission) RunList() []contract.Run {
	out := make([]contract.Run, 0, len(s.Runs))
	for _, r := range s.Runs {
		out = append(out, contract.Run(r))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Started.Equal(b.Started) {
			return a.Started.Before(b.Started)
		}
		if a.ActivityID != b.ActivityID {
			return a.ActivityID < b.ActivityID
		}
		return a.Attempt < b.Attempt
	})
	return out
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

// testResults maps a grade's test results to their documents.
func testResults(ts []contract.TestResult) []TestResult {
	if ts == nil {
		return nil
	}
	out := make([]TestResult, len(ts))
	for i, t := range ts {
		out[i] = testResultDoc(t)
	}
	return out
}

func testResultDoc(t contract.TestResult) TestResult {
	return TestResult{
		Name: t.Name, Passed: t.Passed, Score: t.Score, MaxScore: t.MaxScore,
		Expected: t.Expected, Matched: t.Matched, Got: t.Got, Diff: t.Diff,
		Status: t.Status, Visibility: t.Visibility, Seconds: t.Seconds, Counters: t.Counters,
		Feedback: t.Feedback, LogTail: t.LogTail,
	}
}

// testDoc is an assignment's test in its document.
type testDoc struct {
	Name             string       `bson:"name"`
	Points           float64      `bson:"points"`
	Visibility       string       `bson:"visibility"`
	Input            string       `bson:"input,omitempty"`
	Dataset          string       `bson:"dataset,omitempty"`
	Expected         string       `bson:"expected,omitempty"`
	Compare          string       `bson:"compare,omitempty"`
	Reducers         int          `bson:"reducers,omitempty"`
	Counters         []counterDoc `bson:"counters,omitempty"`
	TimeLimitSeconds int          `bson:"time_limit_seconds,omitempty"`
	InputFiles       []fileDoc    `bson:"input_files"`
	ExpectedFiles    []fileDoc    `bson:"expected_files"`
}

type counterDoc struct {
	Counter string `bson:"counter"`
	Op      string `bson:"op"`
	Value   int64  `bson:"value"`
}

type fileDoc struct {
	Name   string `bson:"name"`
	Blob   string `bson:"blob"`
	SHA256 string `bson:"sha256,omitempty"`
	Size   int64  `bson:"size"`
}

func testsToDoc(ts []contract.TestSpec) []testDoc {
	var out []testDoc
	for _, t := range ts {
		d := testDoc{Name: t.Name, Points: t.Points, Visibility: t.Visibility, Input: t.Input, Dataset: t.Dataset,
			Expected: t.Expected, Compare: t.Compare, Reducers: t.Reducers, TimeLimitSeconds: t.TimeLimitSeconds,
			InputFiles: filesToDoc(t.InputFiles), ExpectedFiles: filesToDoc(t.ExpectedFiles)}
		for _, c := range t.Counters {
			d.Counters = append(d.Counters, counterDoc(c))
		}
		out = append(out, d)
	}
	return out
}

func (d testDoc) spec() contract.TestSpec {
	t := contract.TestSpec{Name: d.Name, Points: d.Points, Visibility: d.Visibility, Input: d.Input, Dataset: d.Dataset,
		Expected: d.Expected, Compare: d.Compare, Reducers: d.Reducers, TimeLimitSeconds: d.TimeLimitSeconds,
		InputFiles: docToFiles(d.InputFiles), ExpectedFiles: docToFiles(d.ExpectedFiles)}
	for _, c := range d.Counters {
		t.Counters = append(t.Counters, contract.CounterCheck(c))
	}
	return t
}

func filesToDoc(fs []contract.FileRef) []fileDoc {
	out := make([]fileDoc, 0, len(fs))
	for _, f := range fs {
		out = append(out, fileDoc(f))
	}
	return out
}

func docToFiles(ds []fileDoc) []contract.FileRef {
	out := make([]contract.FileRef, 0, len(ds))
	for _, d := range ds {
		out = append(out, contract.FileRef(d))
	}
	return out
}

// assignmentDoc is an assignment's document in the assignments collection.
type assignmentDoc struct {
	Name             string     `bson:"_id"`
	Title            string     `bson:"title"`
	Runtimes         []string   `bson:"runtimes"`
	TimeLimitSeconds int        `bson:"time_limit_seconds"`
	MemoryMB         int        `bson:"memory_mb"`
	CPUs             float64    `bson:"cpus"`
	ForbiddenModules []string   `bson:"forbidden_modules"`
	Compare          string     `bson:"compare"`
	Points           float64    `bson:"points"`
	Mapper           string     `bson:"mapper"`
	Reducer          string     `bson:"reducer"`
	Combiner         string     `bson:"combiner,omitempty"`
	MainClass        string     `bson:"main_class"`
	WebhookURL       string     `bson:"webhook_url,omitempty"`
	ShowExpected     bool       `bson:"show_expected,omitempty"`
	InputFiles       []string   `bson:"input_files"`
	ExpectedFiles    []string   `bson:"expected_files"`
	Tests            []testDoc  `bson:"tests,omitempty"`
	DueAt            *time.Time `bson:"due_at,omitempty"`
	Image            string     `bson:"image,omitempty"`
	Supersede        bool       `bson:"supersede,omitempty"`
	UpdatedAt        time.Time  `bson:"updated_at"`
}

func assignmentToDoc(a contract.Assignment) assignmentDoc {
	return assignmentDoc{
		Name: a.Name, Title: a.Title, Runtimes: a.Runtimes, TimeLimitSeconds: a.TimeLimitSeconds,
		MemoryMB: a.MemoryMB, CPUs: a.CPUs, ForbiddenModules: a.ForbiddenModules, Compare: a.Compare,
		Points: a.Points, Mapper: a.Mapper, Reducer: a.Reducer, Combiner: a.Combiner, MainClass: a.MainClass,
		WebhookURL: a.WebhookURL, ShowExpected: a.ShowExpected, InputFiles: a.InputFiles, ExpectedFiles: a.ExpectedFiles, UpdatedAt: a.UpdatedAt,
		Tests: testsToDoc(a.Tests), DueAt: a.DueAt, Image: a.Image, Supersede: a.Supersede,
	}
}

func (d assignmentDoc) assignment() contract.Assignment {
	return contract.Assignment{
		Name: d.Name, Title: d.Title, Runtimes: d.Runtimes, TimeLimitSeconds: d.TimeLimitSeconds,
		MemoryMB: d.MemoryMB, CPUs: d.CPUs, ForbiddenModules: d.ForbiddenModules, Compare: d.Compare,
		Points: d.Points, Mapper: d.Mapper, Reducer: d.Reducer, Combiner: d.Combiner, MainClass: d.MainClass,
		WebhookURL: d.WebhookURL, ShowExpected: d.ShowExpected, InputFiles: d.InputFiles, ExpectedFiles: d.ExpectedFiles, UpdatedAt: d.UpdatedAt,
		DueAt: d.DueAt, Image: d.Image, Tests: specs(d.Tests), Supersede: d.Supersede,
	}
}

func specs(ds []testDoc) []contract.TestSpec {
	var out []contract.TestSpec
	for _, d := range ds {
		out = append(out, d.spec())
	}
	return out
}

// ForStudents is the submission as students may see it at now: a test
// that is hidden, or after_due before the assignment's due date, shows
// only its name, score, status and visibility; no test shows its job log.
func (s Submission) ForStudents(dueAt *time.Time, now time.Time) Submission {
	redact := func(ts []TestResult) []TestResult {
		if ts == nil {
			return nil
		}
		out := make([]TestResult, len(ts))
		for i, t := range ts {
			t.LogTail = ""
			if !(contract.TestSpec{Visibility: t.Visibility}).Released(dueAt, now) {
				t = TestResult{Name: t.Name, Passed: t.Passed, Score: t.Score, MaxScore: t.MaxScore, Status: t.Status, Visibility: t.Visibility}
			}
			out[i] = t
		}
		return out
	}
	s.Tests = redact(s.Tests)
	if s.LiveTests != nil {
		live := map[string]TestResult{}
		for k, t := range s.LiveTests {
			live[k] = redact([]TestResult{t})[0]
		}
		s.LiveTests = live
	}
	return s
}

// HasWithheld reports whether any test's detail may be withheld from
// students (hidden or after_due), so that its assignment's due date matters.
func (s Submission) HasWithheld() bool {
	for _, t := range s.Tests {
		if t.Visibility == contract.VisibilityHidden || t.Visibility == contract.VisibilityAfterDue {
			return true
		}
	}
	for _, t := range s.LiveTests {
		if t.Visibility == contract.VisibilityHidden || t.Visibility == contract.VisibilityAfterDue {
			return true
		}
	}
	return false
}
