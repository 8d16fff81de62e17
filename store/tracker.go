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

// Claim is what an execute attempt found when it claimed its submission.
type Claim int

// Claims.
const (
	// Claimed: the attempt runs the job. A submission the store does not
	// know (a workflow started by hand) or has recorded already (a zombie
	// attempt) is claimed too, untracked, as before the tracker existed.
	Claimed Claim = iota
	// ClaimSuperseded: a newer submission superseded it before it ran.
	ClaimSuperseded
	// ClaimQuarantined: earlier attempts of the step killed their workers
	// too often; the submission is now quarantined.
	ClaimQuarantined
)

// ClaimResult is the outcome of ClaimRun.
type ClaimResult struct {
	Claim Claim
	// Tracked: the run is in the tracker, and CloseRun ends it.
	Tracked bool
	// Runs are the submission's runs, this one included (when tracked).
	Runs []contract.Run
	// Dead counts the earlier attempts of this step whose workers died.
	Dead         int
	SupersededBy string
}

// ClaimRun is an execute attempt's start: one atomic update moves the
// submission to running and opens the attempt's run r in the tracker,
// unless a newer submission superseded it (ClaimSuperseded). The supersede
// update (SupersedeEarlier) matches only submissions not yet running, so
// of a claim and a supersede that race exactly one wins. When quarantineAfter
// is positive and that many earlier attempts of the same step started and
// never ended (their workers died), the submission is quarantined instead
// and the run ends as declined (ClaimQuarantined).
func (s *Store) ClaimRun(ctx context.Context, id string, r contract.Run, quarantineAfter int) (ClaimResult, error) {
	at := r.Started.UTC().Truncate(time.Millisecond)
	r.Started, r.Ended, r.End = at, nil, ""
	key := "runs." + RunKey(r.ActivityID, r.Attempt)
	update := bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "stage", Value: contract.StageRunning}, {Key: "status", Value: contract.StatusPending},
			{Key: "updated_at", Value: at}, {Key: key, Value: Run(r)},
		}},
		{Key: "$max", Value: bson.D{{Key: "attempts.execute", Value: r.Attempt}}},
		{Key: "$min", Value: bson.D{{Key: "times.execute_started", Value: at}}},
	}
	filter := bson.D{{Key: "_id", Value: id},
		{Key: "stage", Value: bson.D{{Key: "$ne", Value: contract.StageDone}}},
		{Key: "status", Value: bson.D{{Key: "$ne", Value: contract.StatusSuperseded}}}}
	var doc Submission
	// No projection: FerretDB 1.24 does not support one on findAndModify.
	err := s.submissions.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().
		SetReturnDocument(options.After)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		sub, err := s.Submission(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return ClaimResult{Claim: Claimed}, nil
		}
		if err != nil {
			return ClaimResult{}, err
		}
		if sub.Status == contract.StatusSuperseded {
			return ClaimResult{Claim: ClaimSuperseded, SupersededBy: sub.SupersededBy}, nil
		}
		return ClaimResult{Claim: Claimed}, nil
	}
	if err != nil {
		return ClaimResult{}, fmt.Errorf("claim submission %s: %w", id, err)
	}
	res := ClaimResult{Claim: Claimed, Tracked: true, Runs: doc.RunList()}
	for _, run := range res.Runs {
		if run.Dead(r.ActivityID, r.Attempt) {
			res.Dead++
		}
	}
	if quarantineAfter > 0 && res.Dead >= quarantineAfter {
		q := bson.D{{Key: "$set", Value: bson.D{
			{Key: "stage", Value: contract.StageQuarantined}, {Key: "status", Value: contract.StatusQuarantined},
			{Key: key + ".ended", Value: at}, {Key: key + ".end", Value: contract.RunQuarantined},
		}}}
		if _, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, q); err != nil {
			return ClaimResult{}, fmt.Errorf("quarantine submission %s: %w", id, err)
		}
		for i := range res.Runs {
			if res.Runs[i].ActivityID == r.ActivityID && res.Runs[i].Attempt == r.Attempt {
				res.Runs[i].Ended, res.Runs[i].End = &at, contract.RunQuarantined
			}
		}
		res.Claim, res.Tracked = ClaimQuarantined, false
		return res, nil
	}
	return res, s.openExecution(ctx, id, doc.Lane, doc.Times)
}

// CloseRun ends a tracked run: when and how. A run that is never closed
// was on a worker that died.
func (s *Store) CloseRun(ctx context.Context, id string, r contract.Run) error {
	if r.Ended == nil {
		return fmt.Errorf("close run %s of %s: no end time", RunKey(r.ActivityID, r.Attempt), id)
	}
	key := "runs." + RunKey(r.ActivityID, r.Attempt)
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: key + ".ended", Value: r.Ended.UTC().Truncate(time.Millisecond)}, {Key: key + ".end", Value: r.End},
	}}}
	if _, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update); err != nil {
		return fmt.Errorf("close run %s of %s: %w", key, id, err)
	}
	return nil
}

// preRun are the stages of a submission that has not started executing:
// the ones a newer submission may supersede.
var preRun = []contract.Stage{contract.StageSubmitted, contract.StageSanity, contract.StageQueued}

// supersedeScan bounds how many of a student's latest submissions of an
// assignment SupersedeEarlier looks at: the rate limit keeps the ones
// still waiting far fewer.
const supersedeScan = 50

// SupersedeEarlier marks the earlier live submissions of newer's student
// and assignment that have not started executing as superseded by newer,
// and returns their IDs. Each is one conditional update that matches only
// while the submission is pending before execution, so it never touches
// one that already runs (ClaimRun's claim won) or is done.
func (s *Store) SupersedeEarlier(ctx context.Context, newer Submission, at time.Time) ([]string, error) {
	page, err := s.ListSubmissions(ctx, SubmissionFilter{Student: newer.Student, Assignment: newer.Assignment}, PageCursor{}, supersedeScan)
	if err != nil {
		return nil, err
	}
	at = at.UTC().Truncate(time.Millisecond)
	var out []string
	for _, old := range page {
		if old.ID == newer.ID || old.Lane == contract.LaneRegrade || old.RegradeOf != "" || old.Status != contract.StatusPending {
			continue
		}
		if old.Times.Submitted != nil && newer.Times.Submitted != nil && old.Times.Submitted.After(*newer.Times.Submitted) {
			continue // a newer one still: it supersedes this one, not the reverse
		}
		filter := bson.D{{Key: "_id", Value: old.ID}, {Key: "status", Value: contract.StatusPending},
			{Key: "stage", Value: bson.D{{Key: "$in", Value: preRun}}}}
		update := bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: contract.StatusSuperseded}, {Key: "superseded_by", Value: newer.ID}, {Key: "updated_at", Value: at},
		}}}
		res, err := s.submissions.UpdateOne(ctx, filter, update)
		if err != nil {
			return out, fmt.Errorf("supersede submission %s: %w", old.ID, err)
		}
		if res.ModifiedCount == 1 {
			out = append(out, old.ID)
		}
	}
	return out, nil
}

// ReleaseQuarantined puts a quarantined submission back in the queue, as
// staff release it; it reports false when the submission is not
// quarantined. The workflow's next attempt claims it as usual.
func (s *Store) ReleaseQuarantined(ctx context.Context, id string, at time.Time) (bool, error) {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "status", Value: contract.StatusQuarantined}}
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "stage", Value: contract.StageQueued}, {Key: "status", Value: contract.StatusPending},
		{Key: "updated_at", Value: at.UTC().Truncate(time.Millisecond)},
	}}}
	res, err := s.submissions.UpdateOne(ctx, filter, update)
	if err != nil {
		return false, fmt.Errorf("release submission %s: %w", id, err)
	}
	return res.MatchedCount == 1, nil
}
