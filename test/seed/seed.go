// Package seed fills a gradeflow database with a semester of history
// through the MongoDB wire protocol, for benchmarks and scale checks:
// finished submissions in the read model's own shape (store.Submission),
// spread over students and assignments, each with its files in GridFS.
// Everything it writes is deterministic for a given start index, so a
// seeded database can be grown level by level (0, then 20k, then 200k).
package seed

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Options shape the history.
type Options struct {
	Students    int       // distinct students (3,000 for the course of the issue)
	Assignments int       // distinct assignments
	FileBytes   int       // bytes of each of a submission's two files
	Batch       int       // documents per insert
	Start       time.Time // submission time of the first submission; each next one is 1 s later
}

// Defaults are a 3,000-student course with ten assignments whose two
// files of 2.5 KB make 1 GB of files at 200,000 submissions.
func Defaults() Options {
	return Options{Students: 3000, Assignments: 10, FileBytes: 2560, Batch: 1000,
		Start: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
}

// ID is the ID of the i-th seeded submission.
func ID(i int) string { return fmt.Sprintf("seed-%07d", i) }

// Student is the student of the i-th seeded submission.
func Student(i int, o Options) string { return fmt.Sprintf("student-%04d", i%o.Students) }

// Submissions writes seeded submissions from, to-1 and their files.
func Submissions(ctx context.Context, db *mongo.Database, from, to int, o Options) error {
	subs := db.Collection(store.SubmissionsCollection)
	files := db.Collection(store.FilesBucket + ".files")
	chunks := db.Collection(store.FilesBucket + ".chunks")
	content := make([]byte, o.FileBytes)
	for i := range content {
		content[i] = "abcdefghijklmnopqrstuvwxyz\n"[i%27]
	}
	for lo := from; lo < to; lo += o.Batch {
		hi := min(lo+o.Batch, to)
		var sdocs, fdocs, cdocs []any
		for i := lo; i < hi; i++ {
			id := ID(i)
			at := o.Start.Add(time.Duration(i) * time.Second)
			queued, started, ended, done := at.Add(400*time.Millisecond), at.Add(2*time.Second), at.Add(5*time.Second), at.Add(5100*time.Millisecond)
			outcome, score := contract.OutcomePassed, 100.0
			if i%4 == 3 {
				outcome, score = contract.OutcomeWrongAnswer, 62.5
			}
			sdocs = append(sdocs, store.Submission{
				ID: id, Assignment: fmt.Sprintf("hw%02d", i%o.Assignments), Student: Student(i, o),
				Files: []string{"mapper.py", "reducer.py"}, WorkflowID: contract.WorkflowID(id),
				Stage: contract.StageDone, Status: contract.StatusGraded, Outcome: outcome, Score: score, MaxScore: 100,
				Feedback:   "30 of 48 expected lines match; 18 missing, 0 unexpected",
				Tests:      []store.TestResult{{Name: "output", Passed: score == 100, Score: score, MaxScore: 100, Expected: 48, Matched: 30, Got: 30}},
				Attempts:   map[string]int{"sanity": 1, "execute": 1},
				Times:      store.Times{Submitted: &at, SanityStarted: &at, Queued: &queued, ExecuteStarted: &started, ExecuteEnded: &ended, Completed: &done},
				RunSeconds: 3, UpdatedAt: done,
			})
			for _, f := range []string{"mapper.py", "reducer.py"} {
				name := store.SubmissionFile(id, f)
				fdocs = append(fdocs, bson.D{
					{Key: "_id", Value: name}, {Key: "length", Value: int64(len(content))}, {Key: "chunkSize", Value: int32(255 * 1024)},
					{Key: "uploadDate", Value: bson.NewDateTimeFromTime(at)}, {Key: "filename", Value: name},
				})
				cdocs = append(cdocs, bson.D{
					{Key: "_id", Value: name + "#0"}, {Key: "files_id", Value: name}, {Key: "n", Value: int32(0)},
					{Key: "data", Value: bson.Binary{Data: content}},
				})
			}
		}
		// Chunks before files, as an upload writes them.
		if _, err := chunks.InsertMany(ctx, cdocs); err != nil {
			return fmt.Errorf("seed chunks %d-%d: %w", lo, hi, err)
		}
		if _, err := files.InsertMany(ctx, fdocs); err != nil {
			return fmt.Errorf("seed files %d-%d: %w", lo, hi, err)
		}
		if _, err := subs.InsertMany(ctx, sdocs); err != nil {
			return fmt.Errorf("seed submissions %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}
