package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// DeleteFile removes one file. Deleting a missing file is not an error.
func (s *Store) DeleteFile(ctx context.Context, name string) error {
	if err := s.files.Delete(ctx, name); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
		return fmt.Errorf("delete file %s: %w", name, err)
	}
	return nil
}
