package store

import (
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
	// Uploading is set while the request that created the submission stores
	// its files; only that request starts the workflow, once they are all in.
	Uploading bool `bson:"uploading,omitempty" json:"-"`
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
		out[i] = TestResult{
			Name: t.Name, Passed: t.Passed, Score: t.Score, MaxScore: t.MaxScore,
			Expected: t.Expected, Matched: t.Matched, Got: t.Got, Diff: t.Diff,
		}
	}
	return out
}

// assignmentDoc is an assignment's document in the assignments collection.
type assignmentDoc struct {
	Name             string    `bson:"_id"`
	Title            string    `bson:"title"`
	Runtimes         []string  `bson:"runtimes"`
	TimeLimitSeconds int       `bson:"time_limit_seconds"`
	MemoryMB         int       `bson:"memory_mb"`
	CPUs             float64   `bson:"cpus"`
	ForbiddenModules []string  `bson:"forbidden_modules"`
	Compare          string    `bson:"compare"`
	Points           float64   `bson:"points"`
	Mapper           string    `bson:"mapper"`
	Reducer          string    `bson:"reducer"`
	Combiner         string    `bson:"combiner,omitempty"`
	MainClass        string    `bson:"main_class"`
	WebhookURL       string    `bson:"webhook_url,omitempty"`
	ShowExpected     bool      `bson:"show_expected,omitempty"`
	InputFiles       []string  `bson:"input_files"`
	ExpectedFiles    []string  `bson:"expected_files"`
	UpdatedAt        time.Time `bson:"updated_at"`
}

func assignmentToDoc(a contract.Assignment) assignmentDoc {
	return assignmentDoc{
		Name: a.Name, Title: a.Title, Runtimes: a.Runtimes, TimeLimitSeconds: a.TimeLimitSeconds,
		MemoryMB: a.MemoryMB, CPUs: a.CPUs, ForbiddenModules: a.ForbiddenModules, Compare: a.Compare,
		Points: a.Points, Mapper: a.Mapper, Reducer: a.Reducer, Combiner: a.Combiner, MainClass: a.MainClass,
		WebhookURL: a.WebhookURL, ShowExpected: a.ShowExpected, InputFiles: a.InputFiles, ExpectedFiles: a.ExpectedFiles, UpdatedAt: a.UpdatedAt,
	}
}

func (d assignmentDoc) assignment() contract.Assignment {
	return contract.Assignment{
		Name: d.Name, Title: d.Title, Runtimes: d.Runtimes, TimeLimitSeconds: d.TimeLimitSeconds,
		MemoryMB: d.MemoryMB, CPUs: d.CPUs, ForbiddenModules: d.ForbiddenModules, Compare: d.Compare,
		Points: d.Points, Mapper: d.Mapper, Reducer: d.Reducer, Combiner: d.Combiner, MainClass: d.MainClass,
		WebhookURL: d.WebhookURL, ShowExpected: d.ShowExpected, InputFiles: d.InputFiles, ExpectedFiles: d.ExpectedFiles, UpdatedAt: d.UpdatedAt,
	}
}
