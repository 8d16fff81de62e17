package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// ExecutionsCollection holds one small document per recent execution: when
// its submission was queued, started and ended. The queue statistics
// (throughput, median wait, run and sanity times) are measured from it, so
// that they read the last hour's executions, never the whole history of
// submissions. Entries older than executionsKept are removed as the
// statistics are measured.
const ExecutionsCollection = "executions"

// executionsKept is how long an execution stays in the collection: longer
// than any measurement window the API is configured with.
const executionsKept = 2 * time.Hour

// execution is an entry of the executions collection.
type execution struct {
	ID            string     `bson:"_id"`
	Submitted     *time.Time `bson:"submitted,omitempty"`
	SanityStarted *time.Time `bson:"sanity_started,omitempty"`
	Queued        *time.Time `bson:"queued,omitempty"`
	Started       time.Time  `bson:"execute_started"`
	Ended         *time.Time `bson:"execute_ended,omitempty"`
	// Lane is the submission's lane (empty: live): a regrade-all's
	// submissions pass their sanity checks in a burst of their own, which
	// says nothing of a live submission's.
	Lane string `bson:"lane,omitempty"`
}

// openExecution records that submission id (of lane; empty: live) started
// executing, with the times its document has. Repeating it (a retried
// attempt) keeps the first start.
func (s *Store) openExecution(ctx context.Context, id, lane string, t Times) error {
	if t.ExecuteStarted == nil {
		return nil
	}
	set := bson.D{}
	if lane != "" && lane != contract.LaneLive {
		set = append(set, bson.E{Key: "lane", Value: lane})
	}
	if t.Submitted != nil {
		set = append(set, bson.E{Key: "submitted", Value: *t.Submitted})
	}
	if t.SanityStarted != nil {
		set = append(set, bson.E{Key: "sanity_started", Value: *t.SanityStarted})
	}
	if t.Queued != nil {
		set = append(set, bson.E{Key: "queued", Value: *t.Queued})
	}
	update := bson.D{{Key: "$min", Value: bson.D{{Key: "execute_started", Value: *t.ExecuteStarted}}}}
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	_, err := s.db.Collection(ExecutionsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("open execution of %s: %w", id, err)
	}
	return nil
}

// closeExecution records that submission id's execution ended at at. An
// execution that was never opened (a hand-started workflow) is not
// recorded: its wait is unknown.
func (s *Store) closeExecution(ctx context.Context, id string, at time.Time) error {
	update := bson.D{{Key: "$min", Value: bson.D{{Key: "execute_ended", Value: at}}}}
	if _, err := s.db.Collection(ExecutionsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update); err != nil {
		return fmt.Errorf("close execution of %s: %w", id, err)
	}
	return nil
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
	// Sanity holds queued − sanity_started of the same submissions in the
	// live lane.
	Sanity []float64
	// PreQueue holds queued − submitted of the same submissions in the
	// live lane: the sanity step with the waits around it.
	PreQueue []float64
	// RegradePreQueue is PreQueue of the regrade lane's submissions.
	RegradePreQueue []float64
}

// RecentExecutions measures the executions that ended or started since
// since, and removes those too old for any window.
func (s *Store) RecentExecutions(ctx context.Context, since time.Time) (Recent, error) {
	col := s.db.Collection(ExecutionsCollection)
	since = since.UTC()
	if _, err := col.DeleteMany(ctx, bson.D{{Key: "execute_started", Value: bson.D{{Key: "$lt", Value: time.Now().UTC().Add(-executionsKept)}}}}); err != nil {
		return Recent{}, fmt.Errorf("prune executions: %w", err)
	}
	cur, err := col.Find(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "execute_ended", Value: bson.D{{Key: "$gte", Value: since}}}},
		bson.D{{Key: "execute_started", Value: bson.D{{Key: "$gte", Value: since}}}},
	}}})
	if err != nil {
		return Recent{}, fmt.Errorf("find recent executions: %w", err)
	}
	var es []execution
	if err := cur.All(ctx, &es); err != nil {
		return Recent{}, fmt.Errorf("find recent executions: %w", err)
	}
	var r Recent
	// Oldest first, so callers can weigh the latest most.
	ended := make([]execution, 0, len(es))
	for _, e := range es {
		if e.Ended != nil && !e.Ended.Before(since) {
			ended = append(ended, e)
		}
	}
	sort.Slice(ended, func(i, j int) bool { return ended[i].Ended.Before(*ended[j].Ended) })
	for _, e := range ended {
		r.Run = append(r.Run, max(e.Ended.Sub(e.Started).Seconds(), 0))
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Started.Before(es[j].Started) })
	for _, e := range es {
		if e.Started.Before(since) || e.Queued == nil {
			continue
		}
		r.Wait = append(r.Wait, max(e.Started.Sub(*e.Queued).Seconds(), 0))
		regrade := e.Lane == contract.LaneRegrade
		if e.SanityStarted != nil && !regrade {
			r.Sanity = append(r.Sanity, max(e.Queued.Sub(*e.SanityStarted).Seconds(), 0))
		}
		if e.Submitted != nil {
			pre := max(e.Queued.Sub(*e.Submitted).Seconds(), 0)
			if regrade {
				r.RegradePreQueue = append(r.RegradePreQueue, pre)
			} else {
				r.PreQueue = append(r.PreQueue, pre)
			}
		}
	}
	return r, nil
}
