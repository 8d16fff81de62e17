package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Index is an index the store declares, with the queries it serves. Every
// query the store makes is served by one of these or reads a collection
// whose size is bounded by the work in flight, not by history (see
// Queries); the query-shape test holds the store to it on a real server.
type Index struct {
	Collection string
	Keys       bson.D
	Unique     bool
	Serves     string // the queries, in words
}

// Indexes are every index the store needs besides _id.
var Indexes = []Index{
	{Collection: SubmissionsCollection, Keys: bson.D{{Key: "student", Value: 1}, {Key: "times.submitted", Value: -1}, {Key: "_id", Value: -1}},
		Serves: "a student's submissions, newest first (the portal's list)"},
	{Collection: SubmissionsCollection, Keys: bson.D{{Key: "student", Value: 1}, {Key: "assignment", Value: 1}, {Key: "times.submitted", Value: -1}, {Key: "_id", Value: -1}},
		Serves: "a student's submissions of one assignment, newest first"},
	{Collection: SubmissionsCollection, Keys: bson.D{{Key: "assignment", Value: 1}, {Key: "times.submitted", Value: -1}, {Key: "_id", Value: -1}},
		Serves: "an assignment's submissions, newest first (staff)"},
	{Collection: SubmissionsCollection, Keys: bson.D{{Key: "status", Value: 1}, {Key: "times.submitted", Value: -1}, {Key: "_id", Value: -1}},
		Serves: "the submissions of a status held for staff (quarantined), newest first"},
	{Collection: SubmissionsCollection, Keys: bson.D{{Key: "stage", Value: 1}, {Key: "lane", Value: 1}, {Key: "times.queued", Value: 1}},
		Serves: "the submissions in a stage (queue counts, positions, stage times); the queued ones by lane, earliest first (prefetch candidates)"},
	{Collection: ExecutionsCollection, Keys: bson.D{{Key: "execute_started", Value: 1}},
		Serves: "executions started in the window; pruning"},
	{Collection: ExecutionsCollection, Keys: bson.D{{Key: "execute_ended", Value: 1}},
		Serves: "executions ended in the window"},
	{Collection: RateLimitsCollection, Keys: bson.D{{Key: "key", Value: 1}, {Key: "slot", Value: -1}},
		Serves: "a student's latest rate-limit reservation; pruning"},
	{Collection: WorkersCollection, Keys: bson.D{{Key: "queue", Value: 1}, {Key: "seen_at", Value: 1}},
		Serves: "live workers of a queue"},
	{Collection: FilesBucket + ".files", Keys: bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: 1}},
		Serves: "GridFS: a file by name (the driver's index)"},
	{Collection: FilesBucket + ".chunks", Keys: bson.D{{Key: "files_id", Value: 1}, {Key: "n", Value: 1}}, Unique: true,
		Serves: "GridFS: a file's chunks in order (the driver's index)"},
}

// EnsureIndexes creates every declared index. It is idempotent and cheap
// when they exist. Indexes are created one at a time: FerretDB 1.24 drops
// the connection when a batch re-creates two existing ones.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, ix := range Indexes {
		if err := s.ensureIndex(ctx, ix); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) ensureIndex(ctx context.Context, ix Index) error {
	m := mongo.IndexModel{Keys: ix.Keys}
	if ix.Unique {
		m.Options = options.Index().SetUnique(true)
	}
	if _, err := s.db.Collection(ix.Collection).Indexes().CreateOne(ctx, m); err != nil {
		return fmt.Errorf("create index on %s %v: %w", ix.Collection, ix.Keys, err)
	}
	return nil
}
