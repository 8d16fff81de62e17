package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// SubmissionFilter selects submissions by owner. Empty fields match all.
type SubmissionFilter struct {
	Student    string
	Assignment string
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

// QueuePosition counts the submissions ahead of sub that wait for an
// execution slot: those in stage queued that were queued before it. A
// submission that has not reached the queue yet has every queued one ahead
// of it; one past the queue has none.
func (s *Store) QueuePosition(ctx context.Context, sub Submission) (int64, error) {
	filter := bson.D{{Key: "stage", Value: contract.StageQueued}}
	switch sub.Stage {
	case contract.StageSubmitted, contract.StageSanity:
	case contract.StageQueued:
		if sub.Times.Queued != nil {
			filter = append(filter, bson.E{Key: "times.queued", Value: bson.D{{Key: "$lt", Value: *sub.Times.Queued}}})
		}
	default:
		return 0, nil
	}
	n, err := s.submissions.CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("count queue ahead of %s: %w", sub.ID, err)
	}
	return n, nil
}

// CountStage counts the submissions currently in stage.
func (s *Store) CountStage(ctx context.Context, stage contract.Stage) (int64, error) {
	n, err := s.submissions.CountDocuments(ctx, bson.D{{Key: "stage", Value: stage}})
	if err != nil {
		return 0, fmt.Errorf("count stage %s: %w", stage, err)
	}
	return n, nil
}

// Recent holds measured durations of the submissions that passed through
// execution recently, in seconds.
// Recent's lists are ordered oldest first.
type Recent struct {
	// Run holds execute_ended − execute_started of every execution that
	// ended in the window; len(Run) is the window's throughput.
	Run []float64
	// Wait holds execute_started − queued of every execution that started
	// in the window: the time spent waiting for a slot.
	Wait []float64
	// Sanity holds queued − sanity_started of the same submissions.
	Sanity []float64
}

// RecentExecutions measures the executions that ended or started since since.
func (s *Store) RecentExecutions(ctx context.Context, since time.Time) (Recent, error) {
	var r Recent
	proj := options.Find().SetProjection(bson.D{{Key: "times", Value: 1}})
	ended, err := s.findTimes(ctx, bson.D{{Key: "times.execute_ended", Value: bson.D{{Key: "$gte", Value: since}}}}, proj)
	if err != nil {
		return Recent{}, err
	}
	// Oldest first, so callers can weigh the latest most.
	sort.Slice(ended, func(i, j int) bool { return ended[i].ExecuteEnded.Before(*ended[j].ExecuteEnded) })
	for _, t := range ended {
		// A submission whose execute_started was lost (a hand-started
		// workflow) still counts towards throughput.
		d := 0.0
		if t.ExecuteStarted != nil {
			d = t.ExecuteEnded.Sub(*t.ExecuteStarted).Seconds()
		}
		r.Run = append(r.Run, max(d, 0))
	}
	started, err := s.findTimes(ctx, bson.D{{Key: "times.execute_started", Value: bson.D{{Key: "$gte", Value: since}}}}, proj)
	if err != nil {
		return Recent{}, err
	}
	sort.Slice(started, func(i, j int) bool { return started[i].ExecuteStarted.Before(*started[j].ExecuteStarted) })
	for _, t := range started {
		if t.Queued == nil {
			continue
		}
		r.Wait = append(r.Wait, max(t.ExecuteStarted.Sub(*t.Queued).Seconds(), 0))
		if t.SanityStarted != nil {
			r.Sanity = append(r.Sanity, max(t.Queued.Sub(*t.SanityStarted).Seconds(), 0))
		}
	}
	return r, nil
}

func (s *Store) findTimes(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]Times, error) {
	cur, err := s.submissions.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find recent executions: %w", err)
	}
	var docs []struct {
		Times Times `bson:"times"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find recent executions: %w", err)
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

// NextRegrade returns the smallest N ≥ 1 above every existing regrade
// "<id>-r<N>" of submission id.
func (s *Store) NextRegrade(ctx context.Context, id string) (int, error) {
	pattern := "^" + regexp.QuoteMeta(id) + "-r([0-9]+)$"
	cur, err := s.submissions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: pattern}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("find regrades of %s: %w", id, err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("find regrades of %s: %w", id, err)
	}
	re := regexp.MustCompile(pattern)
	next := 1
	for _, d := range docs {
		if m := re.FindStringSubmatch(d.ID); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	return next, nil
}

// SetRegradeOf links submission id to the submission it regrades.
func (s *Store) SetRegradeOf(ctx context.Context, id, of string) error {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "regrade_of", Value: of}}}}
	res, err := s.submissions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update)
	if err != nil {
		return fmt.Errorf("link regrade %s of %s: %w", id, of, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("link regrade %s: submission %w", id, ErrNotFound)
	}
	return nil
}

// SubmissionFiles reads every file of a submission, keyed by relative
// path, failing with ErrTooLarge when they exceed max bytes together.
func (s *Store) SubmissionFiles(ctx context.Context, id string, max int64) (map[string][]byte, error) {
	prefix := SubmissionPrefix(id)
	names, err := s.ListFiles(ctx, prefix)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(names))
	budget := max
	for _, name := range names {
		data, err := s.ReadFile(ctx, name, budget)
		if err != nil {
			return nil, err
		}
		budget -= int64(len(data))
		files[name[len(prefix):]] = data
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

// PreQueueSubmitted returns when each submission not yet through its
// sanity check (stages submitted and sanity) was submitted: those submitted
// earlier will queue ahead of a later one.
func (s *Store) PreQueueSubmitted(ctx context.Context) ([]time.Time, error) {
	return s.stageTimes(ctx, []contract.Stage{contract.StageSubmitted, contract.StageSanity}, "submitted", func(t Times) *time.Time { return t.Submitted })
}

// stageTimes returns one recorded time (field, read by get) of every
// submission in one of stages.
func (s *Store) stageTimes(ctx context.Context, stages []contract.Stage, field string, get func(Times) *time.Time) ([]time.Time, error) {
	ts, err := s.findTimes(ctx, bson.D{{Key: "stage", Value: bson.D{{Key: "$in", Value: stages}}}},
		options.Find().SetProjection(bson.D{{Key: "times." + field, Value: 1}}))
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, len(ts))
	for _, t := range ts {
		if v := get(t); v != nil {
			out = append(out, *v)
		}
	}
	return out, nil
}
