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
// regraded as which, and their scores before.
const RegradesCollection = "regrades"

// RegradeRun is one regrade of an assignment's submissions.
type RegradeRun struct {
	ID         string        `bson:"_id" json:"id"`
	Assignment string        `bson:"assignment" json:"assignment"`
	Scope      string        `bson:"scope" json:"scope"` // "latest" or "all"
	CreatedAt  time.Time     `bson:"created_at" json:"created_at"`
	Items      []RegradeItem `bson:"items" json:"-"`
}

// RegradeItem is one submission of a regrade-all and its new grading.
type RegradeItem struct {
	From        string  `bson:"from"`
	To          string  `bson:"to,omitempty"`
	Student     string  `bson:"student"`
	BeforeScore float64 `bson:"before_score"`
	BeforeMax   float64 `bson:"before_max"`
	Before      string  `bson:"before"` // outcome or status before
	Error       string  `bson:"error,omitempty"`
}

// PutRegradeRun writes a regrade run (whole: it is written when planned
// and again once its regrades are started).
func (s *Store) PutRegradeRun(ctx context.Context, r RegradeRun) error {
	if _, err := s.db.Collection(RegradesCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.ID}}, r, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put regrade %s: %w", r.ID, err)
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
	return r, nil
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
