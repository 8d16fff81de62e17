// Package store keeps gradeflow's durable state in MongoDB: assignment
// configurations, the submissions read model that the portal and the API
// read, and every file (submissions, input data, expected and actual output,
// build artifacts) in GridFS, so that no file ever travels through a Temporal
// payload.
//
// Every write is idempotent and keyed by the submission ID (or assignment
// name), because the activities that call it are retried.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// ErrNotFound is returned when a submission, assignment or file does not exist.
var ErrNotFound = errors.New("not found")

// Collection and bucket names. The portal may read these collections directly.
const (
	SubmissionsCollection = "submissions"
	AssignmentsCollection = "assignments"
	FilesBucket           = "files"
)

// Store is a MongoDB-backed store. It is safe for concurrent use.
type Store struct {
	client      *mongo.Client
	db          *mongo.Database
	submissions *mongo.Collection
	assignments *mongo.Collection
	files       *mongo.GridFSBucket
	fileIndexes sync.Once // the GridFS indexes, made before the first upload
}

// Open connects to the MongoDB server at uri and uses database dbName.
// It does not wait for the server: use Ping for that.
func Open(uri, dbName string) (*Store, error) {
	return open(clientOptions(uri), dbName)
}

// clientOptions are the driver options every store connects with.
func clientOptions(uri string) *options.ClientOptions {
	return options.Client().
		ApplyURI(uri).
		SetAppName("gradeflow").
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second)
}

// open connects with opts and opens database dbName.
func open(opts *options.ClientOptions, dbName string) (*Store, error) {
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect mongodb: %w", err)
	}
	db := client.Database(dbName)
	return &Store{
		client:      client,
		db:          db,
		submissions: db.Collection(SubmissionsCollection),
		assignments: db.Collection(AssignmentsCollection),
		files:       db.GridFSBucket(options.GridFSBucket().SetName(FilesBucket)),
	}, nil
}

// Close disconnects from the server.
func (s *Store) Close(ctx context.Context) error {
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect mongodb: %w", err)
	}
	return nil
}

// Unavailable reports whether err means that MongoDB could not be reached
// (no server selected in time, or the connection failed), as opposed to a
// query it refused. Callers answer such errors with "retry later".
func Unavailable(err error) bool {
	var sel topology.ServerSelectionError
	return errors.As(err, &sel) || mongo.IsNetworkError(err)
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

// DB exposes the database, for tests and operational tooling.
func (s *Store) DB() *mongo.Database { return s.db }
