package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// WorkersCollection holds one document per live worker process, refreshed
// by its heartbeat, so the API can tell how many execution slots are online
// (Temporal reports pollers, not their concurrency).
const WorkersCollection = "workers"

// WorkerBeat is what a worker advertises about one of its task queues.
type WorkerBeat struct {
	Identity string    `bson:"identity" json:"identity"` // the worker's Temporal identity
	Queue    string    `bson:"queue" json:"queue"`       // short queue name: "execute", "sanity", "grade"
	Slots    int       `bson:"slots" json:"slots"`       // concurrent activities it runs on that queue
	SeenAt   time.Time `bson:"seen_at" json:"seen_at"`   // last heartbeat
}

// workerID keys a worker's document by identity and queue, so one process
// serving several queues advertises each.
func workerID(identity, queue string) string { return identity + "/" + queue }

// HeartbeatWorker records that a worker serves b.Queue with b.Slots slots,
// as of at. It is an upsert, safe to repeat.
func (s *Store) HeartbeatWorker(ctx context.Context, b WorkerBeat, at time.Time) error {
	id := workerID(b.Identity, b.Queue)
	set := bson.D{
		{Key: "identity", Value: b.Identity},
		{Key: "queue", Value: b.Queue},
		{Key: "slots", Value: b.Slots},
		{Key: "seen_at", Value: at.UTC().Truncate(time.Millisecond)},
	}
	opts := options.UpdateOne().SetUpsert(true)
	if _, err := s.db.Collection(WorkersCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: set}}, opts); err != nil {
		return fmt.Errorf("heartbeat worker %s: %w", id, err)
	}
	return nil
}

// RemoveWorker forgets a worker's queue, for a clean shutdown.
func (s *Store) RemoveWorker(ctx context.Context, identity, queue string) error {
	id := workerID(identity, queue)
	if _, err := s.db.Collection(WorkersCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("remove worker %s: %w", id, err)
	}
	return nil
}

// ExecutionSlots sums the slots of the execute workers whose last heartbeat
// is no older than freshWithin, and counts those workers.
func (s *Store) ExecutionSlots(ctx context.Context, freshWithin time.Duration) (slots, workers int, err error) {
	since := time.Now().Add(-freshWithin).UTC()
	cur, err := s.db.Collection(WorkersCollection).Find(ctx, bson.D{
		{Key: "queue", Value: "execute"},
		{Key: "seen_at", Value: bson.D{{Key: "$gte", Value: since}}},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("find workers: %w", err)
	}
	var beats []struct {
		Slots int `bson:"slots"`
	}
	if err := cur.All(ctx, &beats); err != nil {
		return 0, 0, fmt.Errorf("find workers: %w", err)
	}
	for _, b := range beats {
		slots += max(b.Slots, 0)
	}
	return slots, len(beats), nil
}
