package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// SubmissionFilter selects submissions by owner, or by status. Empty
// fields match all.
type SubmissionFilter struct {
	Student    string
	Assignment string
	// Status selects by status; the status index serves it alone, for the
	// few submissions held for staff (quarantined).
	Status contract.Status
}

// PageCursor marks where a page of submissions ended: the last submission's
// submission time and ID. The zero value starts at the newest submission.
type PageCursor struct {
	Submitted time.Time
	ID        string
}

// ListSubmissions returns up to limit submissions matching f, newest first
// (by submission time, then ID), starting after cursor.
func (s *Store) ListSubmissions(ctx context.Context, f SubmissionFilter, after PageCursor, limit int) ([]Submission, error) {
	filter := bson.D{}
	if f.Student != "" {
		filter = append(filter, bson.E{Key: "student", Value: f.Student})
	}
	if f.Assignment != "" {
		filter = append(filter, bson.E{Key: "assignment", Value: f.Assignment})
	}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: f.Status})
	}
	if after.ID != "" {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "times.submitted", Value: bson.D{{Key: "$lt", Value: after.Submitted}}}},
			bson.D{{Key: "times.submitted", Value: after.Submitted}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}})
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "times.submitted", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit))
	cur, err := s.submissions.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("list submissions: %w", err)
	}
	subs := []Submission{}
	if err := cur.All(ctx, &subs); err != nil {
		return nil, fmt.Errorf("list submissions: %w", err)
	}
	return subs, nil
}

func (s *Store) findTimes(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]Times, error) {
	cur, err := s.submissions.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find submission times: %w", err)
	}
	var docs []struct {
		Times Times `bson:"times"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find submission times: %w", err)
	}
	out := make([]Times, len(docs))
	for i, d := range docs {
		out[i] = d.Times
	}
	return out, nil
}

// Median returns the median of xs, and false when xs is empty.
func Median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// NextRegrade reserves the next regrade number of submission id: 1 for
// its first regrade "<id>-r1", then 2, and so on. The counter lives on the
// submission's document, so no query looks for the regrades themselves.
func (s *Store) NextRegrade(ctx context.Context, id string) (int, error) {
	var doc struct {
		Regrades int `bson:"regrades"`
	}
	err := s.submissions.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "regrades", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("count regrades of %s: %w", id, err)
	}
	return doc.Regrades, nil
}

// SubmissionFiles reads every file of a submission (those its document
// names), keyed by relative path, failing with ErrTooLarge when they exceed
// max bytes together.
func (s *Store) SubmissionFiles(ctx context.Context, sub Submission, max int64) (map[string][]byte, error) {
	files := make(map[string][]byte, len(sub.Files))
	budget := max
	for _, rel := range sub.Files {
		data, err := s.ReadFile(ctx, SubmissionFile(sub.ID, rel), budget)
		if err != nil {
			return nil, err
		}
		budget -= int64(len(data))
		files[rel] = data
	}
	return files, nil
}

// Assignments returns every assignment, by name.
func (s *Store) Assignments(ctx context.Context) ([]contract.Assignment, error) {
	cur, err := s.assignments.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	var docs []assignmentDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	as := make([]contract.Assignment, 0, len(docs))
	for _, d := range docs {
		as = append(as, d.assignment())
	}
	return as, nil
}

// RunningStarts returns when each submission now running started running.
func (s *Store) RunningStarts(ctx context.Context) ([]time.Time, error) {
	return s.stageTimes(ctx, []contract.Stage{contract.StageRunning}, "execute_started", func(t Times) *time.Time { return t.ExecuteStarted })
}

// stageTimes returns one recorded time (field, read by get) of every
// submission in one of stages: one equality query per stage, each served by
// the stage index and bounded by the work in flight.
func (s *Store) stageTimes(ctx context.Context, stages []contract.Stage, field string, get func(Times) *time.Time) ([]time.Time, error) {
	var out []time.Time
	for _, stage := range stages {
		ts, err := s.findTimes(ctx, bson.D{{Key: "stage", Value: stage}},
			options.Find().SetProjection(bson.D{{Key: "times." + field, Value: 1}}))
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if v := get(t); v != nil {
				out = append(out, *v)
			}
		}
	}
	return out, nil
}

// QueuedNext returns up to limit submissions waiting for an execution slot
// (stage queued): the live lane first, then the regrade lane, each earliest
// queued first — live submissions have no lane or "live", which sort
// before "regrade", as their Temporal priority goes before it. It reads only
// what a prefetching host needs and what decides the dispatch order: ID,
// student, assignment, lane, files, submission and queue time. One equality
// on stage, served in this order by the stage index and bounded by the
// queue. Temporal, not this order, decides which job runs next (the caller
// models it with package dispatch), so the result is a set of candidates.
func (s *Store) QueuedNext(ctx context.Context, limit int) ([]Submission, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "lane", Value: 1}, {Key: "times.queued", Value: 1}}).
		SetLimit(int64(limit)).
		SetProjection(bson.D{
			{Key: "student", Value: 1}, {Key: "assignment", Value: 1}, {Key: "lane", Value: 1}, {Key: "files", Value: 1},
			{Key: "stage", Value: 1}, {Key: "times.submitted", Value: 1}, {Key: "times.queued", Value: 1},
		})
	cur, err := s.submissions.Find(ctx, bson.D{{Key: "stage", Value: contract.StageQueued}}, opts)
	if err != nil {
		return nil, fmt.Errorf("find next queued: %w", err)
	}
	subs := []Submission{}
	if err := cur.All(ctx, &subs); err != nil {
		return nil, fmt.Errorf("find next queued: %w", err)
	}
	return subs, nil
}

// WaitingOf is what decides a submission's turn in the execute queue, as
// the dispatch model reads it.
func WaitingOf(sub Submission) Waiting {
	w := Waiting{ID: sub.ID, Student: sub.Student, Assignment: sub.Assignment, Lane: sub.Lane, Stage: sub.Stage}
	if sub.Times.Submitted != nil {
		w.Submitted = *sub.Times.Submitted
	}
	if sub.Times.Queued != nil {
		w.Queued = *sub.Times.Queued
	}
	return w
}

// Waiting is a submission waiting for an execution slot (or still before
// the queue), with what decides its turn: who submitted it, its lane, and
// when it queued (or was submitted).
type Waiting struct {
	ID         string
	Student    string
	Assignment string
	Lane       string
	Stage      contract.Stage
	Submitted  time.Time // zero when unknown
	Queued     time.Time // zero before the queue
}

// WaitingSubmissions returns every submission in one of stages (queued,
// or those before the queue): one equality query per stage, served by the
// stage index and bounded by the work in flight, reading only the fields
// the dispatch order needs.
func (s *Store) WaitingSubmissions(ctx context.Context, stages ...contract.Stage) ([]Waiting, error) {
	var out []Waiting
	for _, stage := range stages {
		cur, err := s.submissions.Find(ctx, bson.D{{Key: "stage", Value: stage}},
			options.Find().SetProjection(bson.D{
				{Key: "student", Value: 1}, {Key: "assignment", Value: 1}, {Key: "lane", Value: 1},
				{Key: "times.submitted", Value: 1}, {Key: "times.queued", Value: 1},
			}))
		if err != nil {
			return nil, fmt.Errorf("find %s submissions: %w", stage, err)
		}
		var docs []Submission
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("find %s submissions: %w", stage, err)
		}
		for _, d := range docs {
			d.Stage = stage
			if stage != contract.StageQueued {
				d.Times.Queued = nil // a queue time counts only in the queue
			}
			out = append(out, WaitingOf(d))
		}
	}
	return out, nil
}
