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

// PutAssignment creates or replaces an assignment's configuration. Its input
// and expected files must be stored first (under InputPrefix and
// ExpectedPrefix), and a.InputFiles and a.ExpectedFiles name them (full
// names, sorted): readers fetch exactly those, by name, and never list
// GridFS.
func (s *Store) PutAssignment(ctx context.Context, a contract.Assignment) error {
	a.Defaults()
	if err := a.Validate(); err != nil {
		return err
	}
	a.InputFiles, a.ExpectedFiles = slices.Sorted(slices.Values(a.InputFiles)), slices.Sorted(slices.Values(a.ExpectedFiles))
	a.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	opts := options.Replace().SetUpsert(true)
	if _, err := s.assignments.ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.Name}}, assignmentToDoc(a), opts); err != nil {
		return fmt.Errorf("put assignment %s: %w", a.Name, err)
	}
	return nil
}

// Assignment returns the named assignment.
func (s *Store) Assignment(ctx context.Context, name string) (contract.Assignment, error) {
	var d assignmentDoc
	err := s.assignments.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return contract.Assignment{}, fmt.Errorf("assignment %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return contract.Assignment{}, fmt.Errorf("find assignment %s: %w", name, err)
	}
	return d.assignment(), nil
}
