package store

// This file is the store's one GridFS seam. Small files are written and
// read in the standard GridFS layout (a files document, chunks with
// files_id and n), but with chunk _ids derived from the file's name, which
// GridFS allows, so that writes skip the driver's 16 MiB upload buffer and
// reads fetch chunks by _id. Files written by the driver (large uploads)
// are read through the driver; every other client reads both.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// gridfsChunkSize is the driver's default GridFS chunk size.
const gridfsChunkSize = 255 * 1024

// putBytes writes data as the GridFS file name, exactly as the driver's
// upload stream does (chunks first, then the files document that makes the
// file visible), but without the 16 MiB buffer the driver allocates for
// every upload, which made each small file cost 16 MiB of garbage. It fails
// with a duplicate-key error when name, or stray chunks of it, exist.
func (s *Store) putBytes(ctx context.Context, name string, data []byte) error {
	return s.putMany(ctx, []string{name}, map[string][]byte{name: data})
}

// putMany is putBytes for several files at once: all their chunks in one
// insert, then all their files documents in another, so that a
// submission's files cost two round trips whatever their number.
func (s *Store) putMany(ctx context.Context, names []string, files map[string][]byte) error {
	s.ensureFileIndexes(ctx)
	var chunks, docs []any
	now := bson.NewDateTimeFromTime(time.Now())
	for _, name := range names {
		data := files[name]
		for n, off := 0, 0; off < len(data); n, off = n+1, off+gridfsChunkSize {
			end := min(off+gridfsChunkSize, len(data))
			chunks = append(chunks, bson.D{
				{Key: "_id", Value: chunkID(name, n)},
				{Key: "files_id", Value: name},
				{Key: "n", Value: int32(n)},
				{Key: "data", Value: bson.Binary{Data: data[off:end]}},
			})
		}
		docs = append(docs, bson.D{
			{Key: "_id", Value: name},
			{Key: "length", Value: int64(len(data))},
			{Key: "chunkSize", Value: int32(gridfsChunkSize)},
			{Key: "uploadDate", Value: now},
			{Key: "filename", Value: name},
		})
	}
	if len(chunks) > 0 {
		if _, err := s.db.Collection(FilesBucket+".chunks").InsertMany(ctx, chunks); err != nil {
			return err
		}
	}
	if len(docs) == 0 {
		return nil
	}
	_, err := s.db.Collection(FilesBucket+".files").InsertMany(ctx, docs)
	return err
}

// chunkID names chunk n of the file name. GridFS lets a chunk's _id be
// anything; a name-derived one lets reads fetch chunks by _id.
func chunkID(name string, n int) string { return name + "#" + strconv.Itoa(n) }

// errForeignChunks means a file's chunks were written by the driver's
// upload stream (random chunk IDs): read it with the driver.
var errForeignChunks = errors.New("chunks not addressable by name")

// readBytes reads a file written by putBytes chunk by chunk, by _id.
func (s *Store) readBytes(ctx context.Context, name string, max int64) ([]byte, error) {
	var f struct {
		Length int64 `bson:"length"`
	}
	err := s.db.Collection(FilesBucket+".files").FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("file %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open file %s: %w", name, err)
	}
	if f.Length > max {
		return nil, fmt.Errorf("file %s is %d bytes: %w", name, f.Length, ErrTooLarge)
	}
	buf := make([]byte, 0, f.Length)
	chunks := s.db.Collection(FilesBucket + ".chunks")
	for n := 0; int64(len(buf)) < f.Length; n++ {
		var c struct {
			Data []byte `bson:"data"`
		}
		err := chunks.FindOne(ctx, bson.D{{Key: "_id", Value: chunkID(name, n)}}).Decode(&c)
		if errors.Is(err, mongo.ErrNoDocuments) && n == 0 {
			return nil, errForeignChunks
		}
		if err != nil {
			return nil, fmt.Errorf("read file %s chunk %d: %w", name, n, err)
		}
		buf = append(buf, c.Data...)
	}
	if int64(len(buf)) != f.Length {
		return nil, fmt.Errorf("read file %s: %d bytes of %d", name, len(buf), f.Length)
	}
	return buf, nil
}

// ensureFileIndexes creates the indexes the driver creates before its
// first upload into a bucket (reads find chunks by files_id and n), once
// per store. A failure is left for the next store to retry: the indexes
// speed reads up but nothing depends on them for correctness.
func (s *Store) ensureFileIndexes(ctx context.Context) {
	s.fileIndexes.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.EnsureFileIndexes(ctx)
	})
}

// EnsureFileIndexes creates the GridFS bucket's indexes, as the driver
// does before its first upload. It is idempotent.
func (s *Store) EnsureFileIndexes(ctx context.Context) error {
	for _, ix := range Indexes {
		if ix.Collection == FilesBucket+".files" || ix.Collection == FilesBucket+".chunks" {
			if err := s.ensureIndex(ctx, ix); err != nil {
				return err
			}
		}
	}
	return nil
}
