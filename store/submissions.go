package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// CreateSubmission inserts a new submission in stage submitted, marked as
// uploading until FilesStored. It reports created=false, and no error, when
// a submission with that ID exists already.
func (s *Store) CreateSubmission(ctx context.Context, sub Submission) (created bool, err error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	sub.Uploading = true
	sub.Stage = contract.StageSubmitted
	sub.Status = contract.StatusPending
	sub.Times = Times{Submitted: &now}
	sub.UpdatedAt = now
	if _, err := s.submissions.InsertOne(ctx, sub); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return false, fmt.Errorf("insert submission %s: %w", sub.ID, err)
	}
	return true, nil
}

// FilesStored clears a submission's uploading mark: all its files are in.
func (s *Store) FilesStored(ctx context.Context, id string) error {
	update := bson.D{{Key: "$unset", Value: bson.D{{Key: "uploading", Value: ""}}}}
	if _, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update); err != nil {
		return fmt.Errorf("mark submission %s stored: %w", id, err)
	}
	return nil
}

// DeleteAbandonedUpload removes a submission that is still marked as
// uploading, and its files: the request that created it died before it
// stored them all. It reports whether it removed one.
func (s *Store) DeleteAbandonedUpload(ctx context.Context, id string) (bool, error) {
	var sub Submission
	err := s.submissions.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id}, {Key: "uploading", Value: true}}).Decode(&sub)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete abandoned upload %s: %w", id, err)
	}
	return true, s.DeleteFiles(ctx, submissionFileNames(sub))
}

// Submission returns the submission with the given ID.
func (s *Store) Submission(ctx context.Context, id string) (Submission, error) {
	var sub Submission
	err := s.submissions.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&sub)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Submission{}, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Submission{}, fmt.Errorf("find submission %s: %w", id, err)
	}
	return sub, nil
}

// stageTime maps a stage to the Times field that records its first arrival.
var stageTime = map[contract.Stage]string{
	contract.StageSanity:  "times.sanity_started",
	contract.StageQueued:  "times.queued",
	contract.StageRunning: "times.execute_started",
}

// Mark is a submission's arrival at a stage.
type Mark struct {
	Stage    contract.Stage
	Activity string // the step's short name ("sanity", "execute"), to count its attempts; "" for none
	Attempt  int    // the step's attempt number; 0 for none
	At       time.Time
}

// MarkStage moves a submission to m.Stage, as seen by attempt m.Attempt of
// the step m.Activity. It is idempotent: the first arrival time and the
// highest attempt win, and a submission that is already done is never
// moved back (by a zombie attempt of an earlier step, say): the update
// matches only a submission not done. Arriving at running also opens the
// submission's entry in the executions collection, from which the queue
// statistics are measured.
func (s *Store) MarkStage(ctx context.Context, id string, m Mark) error {
	stage, activity, attempt := m.Stage, m.Activity, m.Attempt
	at := m.At.UTC().Truncate(time.Millisecond)
	set := bson.D{{Key: "stage", Value: stage}, {Key: "updated_at", Value: at}}
	update := bson.D{{Key: "$set", Value: set}}
	if activity != "" && attempt > 0 {
		update = append(update, bson.E{Key: "$max", Value: bson.D{{Key: "attempts." + activity, Value: attempt}}})
	}
	if field, ok := stageTime[stage]; ok {
		update = append(update, bson.E{Key: "$min", Value: bson.D{{Key: field, Value: at}}})
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "stage", Value: bson.D{{Key: "$ne", Value: contract.StageDone}}}}
	if stage != contract.StageRunning {
		if _, err := s.submissions.UpdateOne(ctx, filter, update); err != nil {
			return fmt.Errorf("mark submission %s %s: %w", id, stage, err)
		}
		return nil
	}
	var doc struct {
		Times Times  `bson:"times"`
		Lane  string `bson:"lane"`
	}
	err := s.submissions.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().
		SetReturnDocument(options.After)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil // done already, or never made through the intake
	}
	if err != nil {
		return fmt.Errorf("mark submission %s %s: %w", id, stage, err)
	}
	return s.openExecution(ctx, id, doc.Lane, doc.Times)
}

// MarkExecuteEnded records when the submission's container finished.
func (s *Store) MarkExecuteEnded(ctx context.Context, id string, at time.Time) error {
	at = at.UTC().Truncate(time.Millisecond)
	update := bson.D{{Key: "$min", Value: bson.D{{Key: "times.execute_ended", Value: at}}}}
	if _, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update); err != nil {
		return fmt.Errorf("mark submission %s executed: %w", id, err)
	}
	return s.closeExecution(ctx, id, at)
}

// Record writes a submission's final grade; owner gives the fields of a
// document that did not exist. Writing the same grade twice
// leaves the same document, so a retried record step is harmless. The
// document is upserted: a submission started without the API (by staff in
// the Temporal UI, say) still gets a record.
func (s *Store) Record(ctx context.Context, id string, owner Submission, f contract.Grade, at time.Time) error {
	at = at.UTC().Truncate(time.Millisecond)
	set := bson.D{
		{Key: "stage", Value: contract.StageDone},
		{Key: "status", Value: f.Status},
		{Key: "outcome", Value: f.Outcome},
		{Key: "score", Value: f.Score},
		{Key: "max_score", Value: f.MaxScore},
		{Key: "feedback", Value: f.Feedback},
		{Key: "tests", Value: testResults(f.Tests)},
		{Key: "run_seconds", Value: f.RunSeconds},
		{Key: "error_detail", Value: f.ErrorDetail},
		{Key: "updated_at", Value: at},
	}
	if f.Grader != (contract.GraderVersion{}) {
		set = append(set, bson.E{Key: "grader", Value: Grader(f.Grader)})
	}
	update := bson.D{
		{Key: "$set", Value: set},
		{Key: "$unset", Value: bson.D{{Key: "live_tests", Value: ""}}},
		{Key: "$min", Value: bson.D{{Key: "times.completed", Value: at}}},
		{Key: "$setOnInsert", Value: bson.D{
			{Key: "assignment", Value: owner.Assignment},
			{Key: "student", Value: owner.Student},
			{Key: "workflow_id", Value: owner.WorkflowID},
			{Key: "files", Value: owner.Files},
			{Key: "times.submitted", Value: at},
		}},
	}
	opts := options.UpdateOne().SetUpsert(true)
	if _, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, opts); err != nil {
		return fmt.Errorf("record submission %s: %w", id, err)
	}
	return nil
}

// DeleteSubmission removes a submission and its files (those its document
// names). The intake uses it to leave no partial state behind when a
// submission cannot be started.
func (s *Store) DeleteSubmission(ctx context.Context, id string) error {
	sub, err := s.Submission(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.DeleteFiles(ctx, submissionFileNames(sub)); err != nil {
		return err
	}
	if _, err := s.submissions.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete submission %s: %w", id, err)
	}
	return nil
}

// submissionFileNames are the GridFS names of a submission's files.
func submissionFileNames(sub Submission) []string {
	names := make([]string, 0, len(sub.Files))
	for _, f := range sub.Files {
		names = append(names, SubmissionFile(sub.ID, f))
	}
	return names
}

// MarkTest records the result of one test of a submission whose job still
// runs. Writing it again writes the same; a recorded submission is left
// alone.
func (s *Store) MarkTest(ctx context.Context, id string, t contract.TestResult) error {
	if !contract.ValidName(t.Name) {
		return fmt.Errorf("mark test %q of %s: invalid test name", t.Name, id)
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "stage", Value: bson.D{{Key: "$ne", Value: contract.StageDone}}}}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "live_tests." + t.Name, Value: testResultDoc(t)}}}}
	if _, err := s.submissions.UpdateOne(ctx, filter, update); err != nil {
		return fmt.Errorf("mark test %s of %s: %w", t.Name, id, err)
	}
	return nil
}
