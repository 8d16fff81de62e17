package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RegradesCollection holds regrade-all runs: which submissions each one
// regrades as which, their scores before, and how far starting them got.
const RegradesCollection = "regrades"

// RegradeRun is one regrade of an assignment's submissions. The intake
// plans it whole (every item with its reserved regrade ID) and stores it
// before anything starts; the run's workflow then starts the items and
// marks each one (StartMarks, ErrorMarks), which RegradeRunByID folds into Items.
type RegradeRun struct {
	ID         string        `bson:"_id" json:"id"`
	Assignment string        `bson:"assignment" json:"assignment"`
	Scope      string        `bson:"scope" json:"scope"` // "latest" or "all"
	CreatedAt  time.Time     `bson:"created_at" json:"created_at"`
	Items      []RegradeItem `bson:"items" json:"-"`
	// WorkflowID names the workflow that starts the items; empty for runs
	// that started their regrades inline (before workflows did), whose
	// items with a To are all started.
	WorkflowID string `bson:"workflow_id,omitempty" json:"workflow_id,omitempty"`
	// StartMarks and ErrorMarks are the marks of the run's workflow, by
	// RegradeItemKey: when an item's regrade was started, or why it can
	// never start.
	StartMarks map[string]time.Time `bson:"started,omitempty" json:"-"`
	ErrorMarks map[string]string    `bson:"errors,omitempty" json:"-"`
}

// RegradeItem is one submission of a regrade-all and its new grading.
type RegradeItem struct {
	From        string  `bson:"from"`
	To          string  `bson:"to,omitempty"` // the regrade's ID, reserved when planned
	Student     string  `bson:"student"`
	BeforeScore float64 `bson:"before_score"`
	BeforeMax   float64 `bson:"before_max"`
	Before      string  `bson:"before"` // outcome or status before
	// BeforeID is the submission whose grade is the "before": From, or
	// From's latest graded regrade when it has one.
	BeforeID     string  `bson:"before_id,omitempty"`
	BeforeGrader *Grader `bson:"before_grader,omitempty"` // absent when the grade did not record it
	Error        string  `bson:"error,omitempty"`         // why it cannot be started
	// StartedAt is when the run's workflow started the regrade (from
	// StartMarks; never stored in the item).
	StartedAt *time.Time `bson:"-"`
}

// RegradeItemKey is item i's key in RegradeRun.StartMarks and ErrorMarks.
func RegradeItemKey(i int) string { return fmt.Sprintf("i%d", i) }

// PutRegradeRun writes a regrade run whole.
func (s *Store) PutRegradeRun(ctx context.Context, r RegradeRun) error {
	if _, err := s.db.Collection(RegradesCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.ID}}, r, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put regrade %s: %w", r.ID, err)
	}
	return nil
}

// CreateRegradeRun stores a planned run. It reports created=false, and no
// error, when a run with that ID exists already: the first plan stands,
// so its reserved regrade IDs are the only ones ever started.
func (s *Store) CreateRegradeRun(ctx context.Context, r RegradeRun) (created bool, err error) {
	if _, err := s.db.Collection(RegradesCollection).InsertOne(ctx, r); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return false, fmt.Errorf("insert regrade %s: %w", r.ID, err)
	}
	return true, nil
}

// DeleteRegradeRun removes a run (the intake's rollback when its workflow
// cannot be started).
func (s *Store) DeleteRegradeRun(ctx context.Context, id string) error {
	if _, err := s.db.Collection(RegradesCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete regrade %s: %w", id, err)
	}
	return nil
}

// MarkRegradeItem records that item i of run id was started at, or, with
// refused set, that it can never start and why. Marking again is
// harmless: the first start time wins.
func (s *Store) MarkRegradeItem(ctx context.Context, id string, i int, at time.Time, refused string) error {
	key := RegradeItemKey(i)
	update := bson.D{{Key: "$min", Value: bson.D{{Key: "started." + key, Value: at.UTC().Truncate(time.Millisecond)}}}}
	if refused != "" {
		update = bson.D{{Key: "$set", Value: bson.D{{Key: "errors." + key, Value: refused}}}}
	}
	if _, err := s.db.Collection(RegradesCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update); err != nil {
		return fmt.Errorf("mark regrade %s item %d: %w", id, i, err)
	}
	return nil
}

// RegradeRunByID returns a regrade run.
func (s *Store) RegradeRunByID(ctx context.Context, id string) (RegradeRun, error) {
	var r RegradeRun
	err := s.db.Collection(RegradesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return RegradeRun{}, fmt.Errorf("regrade %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return RegradeRun{}, fmt.Errorf("find regrade %s: %w", id, err)
	}
	r.fold()
	return r, nil
}

// fold applies the workflow's marks to the items.
func (r *RegradeRun) fold() {
	for i := range r.Items {
		key := RegradeItemKey(i)
		if at, ok := r.StartMarks[key]; ok {
			r.Items[i].StartedAt = &at
		}
		if e := r.ErrorMarks[key]; e != "" {
			r.Items[i].Error = e
		}
	}
}

// SubmissionsByID returns the submissions with these IDs (those that
// exist), without their per-test detail. Each is found by _id, a few at
// a time: FerretDB does not push an _id $in filter down to an index.
func (s *Store) SubmissionsByID(ctx context.Context, ids []string) (map[string]Submission, error) {
	out := make(map[string]Submission, len(ids))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	proj := options.FindOne().SetProjection(bson.D{{Key: "tests", Value: 0}, {Key: "live_tests", Value: 0}, {Key: "files", Value: 0}})
	for _, id := range ids {
		g.Go(func() error {
			var sub Submission
			err := s.submissions.FindOne(gctx, bson.D{{Key: "_id", Value: id}}, proj).Decode(&sub)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("find submission %s: %w", id, err)
			}
			mu.Lock()
			out[id] = sub
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
