package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// smallFile is the size up to which a file is read into memory whole.
const smallFile = 8 << 20

// ErrTooLarge is returned when a file or a set of files exceeds a size cap.
var ErrTooLarge = errors.New("too large")

// PutFile stores data under name, replacing any earlier content. The file's
// GridFS ID is its name, so a retried write replaces rather than duplicates.
// Most names are new, so it writes first (see putBytes) and deletes and
// rewrites only when the name is taken.
func (s *Store) PutFile(ctx context.Context, name string, data []byte) error {
	err := s.putBytes(ctx, name, data)
	if err == nil {
		return nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("upload file %s: %w", name, err)
	}
	return s.PutFileFrom(ctx, name, bytes.NewReader(data))
}

// PutFiles stores several files (name → content), replacing any earlier
// content. New names, the common case, cost two round trips together; if
// any name is taken, each file is written on its own, as by PutFile.
func (s *Store) PutFiles(ctx context.Context, files map[string][]byte) error {
	names := slices.Sorted(maps.Keys(files))
	err := s.putMany(ctx, names, files)
	if err == nil {
		return nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("upload files: %w", err)
	}
	for _, name := range names {
		if err := s.PutFile(ctx, name, files[name]); err != nil {
			return err
		}
	}
	return nil
}

// PutFileFrom stores the content of r under name, replacing earlier content.
func (s *Store) PutFileFrom(ctx context.Context, name string, r io.Reader) error {
	if err := s.DeleteFile(ctx, name); err != nil {
		return err
	}
	if err := s.files.UploadFromStreamWithID(ctx, name, name, r); err != nil {
		return fmt.Errorf("upload file %s: %w", name, err)
	}
	return nil
}

// ReadFile returns the content of name, failing with ErrTooLarge beyond max bytes.
func (s *Store) ReadFile(ctx context.Context, name string, max int64) ([]byte, error) {
	data, err := s.readBytes(ctx, name, max)
	if !errors.Is(err, errForeignChunks) {
		return data, err
	}
	return s.readStream(ctx, name, max)
}

// readStream reads a file through the driver's download stream.
func (s *Store) readStream(ctx context.Context, name string, max int64) ([]byte, error) {
	ds, err := s.openStream(ctx, name, max)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	data, err := io.ReadAll(ds)
	if err != nil {
		return nil, fmt.Errorf("read file %s: %w", name, err)
	}
	return data, nil
}

// openStream opens the driver's download stream of name, failing with
// ErrNotFound or, beyond max bytes, ErrTooLarge.
func (s *Store) openStream(ctx context.Context, name string, max int64) (*mongo.GridFSDownloadStream, error) {
	ds, err := s.files.OpenDownloadStream(ctx, name)
	if errors.Is(err, mongo.ErrFileNotFound) {
		return nil, fmt.Errorf("file %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open file %s: %w", name, err)
	}
	if ds.GetFile().Length > max {
		ds.Close()
		return nil, fmt.Errorf("file %s is %d bytes: %w", name, ds.GetFile().Length, ErrTooLarge)
	}
	return ds, nil
}

// FetchFiles downloads the files prefix+rel for each of rels into dir/rel,
// failing with ErrTooLarge when they together exceed max bytes.
func (s *Store) FetchFiles(ctx context.Context, prefix string, rels []string, dir string, max int64) error {
	var total int64
	for _, rel := range rels {
		if !contract.ValidRelPath(rel) {
			return fmt.Errorf("file %s%s: unsafe path", prefix, rel)
		}
		n, err := s.fetchOne(ctx, prefix+rel, filepath.Join(dir, filepath.FromSlash(rel)), max-total)
		if err != nil {
			return err
		}
		total += n
	}
	return nil
}

func (s *Store) fetchOne(ctx context.Context, name, dst string, budget int64) (int64, error) {
	// Small files (submissions) in one piece, by chunk _id; large ones
	// (input data) streamed.
	if data, err := s.readBytes(ctx, name, min(budget, smallFile)); err == nil {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return 0, fmt.Errorf("fetch %s: %w", name, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return 0, fmt.Errorf("fetch %s: %w", name, err)
		}
		return int64(len(data)), nil
	} else if !errors.Is(err, errForeignChunks) && !errors.Is(err, ErrTooLarge) {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, fmt.Errorf("fetch %s: %w", name, err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", name, err)
	}
	n, err := s.copyChunks(ctx, name, f, budget)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", name, err)
	}
	return n, nil
}

// chunkBatch is how many GridFS chunks (255 KiB each) one round trip
// brings: the driver's download stream asks for unbounded batches, which
// FerretDB answers with replies over the wire protocol's message limit for
// files of hundreds of MB.
const chunkBatch = 32

// copyChunks streams the file with GridFS ID id to w, chunk by chunk in
// order, in bounded batches, failing with ErrTooLarge beyond max bytes.
func (s *Store) copyChunks(ctx context.Context, id string, w io.Writer, max int64) (int64, error) {
	var f struct {
		Length int64 `bson:"length"`
	}
	err := s.db.Collection(FilesBucket+".files").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("file %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("open file %s: %w", id, err)
	}
	if f.Length > max {
		return 0, fmt.Errorf("file %s is %d bytes: %w", id, f.Length, ErrTooLarge)
	}
	cur, err := s.db.Collection(FilesBucket+".chunks").Find(ctx, bson.D{{Key: "files_id", Value: id}},
		options.Find().SetSort(bson.D{{Key: "n", Value: 1}}).SetBatchSize(chunkBatch))
	if err != nil {
		return 0, fmt.Errorf("read file %s: %w", id, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var n int64
	for want := 0; cur.Next(ctx); want++ {
		var c struct {
			N    int    `bson:"n"`
			Data []byte `bson:"data"`
		}
		if err := cur.Decode(&c); err != nil {
			return n, fmt.Errorf("read file %s: %w", id, err)
		}
		if c.N != want {
			return n, fmt.Errorf("read file %s: chunk %d where %d was due", id, c.N, want)
		}
		if n+int64(len(c.Data)) > f.Length {
			return n, fmt.Errorf("read file %s: chunks beyond its length", id)
		}
		k, err := w.Write(c.Data)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("read file %s: %w", id, err)
	}
	if n != f.Length {
		return n, fmt.Errorf("read file %s: %d bytes of %d", id, n, f.Length)
	}
	return n, nil
}

// DeleteFiles removes the named files. Missing ones are no error.
func (s *Store) DeleteFiles(ctx context.Context, names []string) error {
	for _, name := range names {
		if err := s.DeleteFile(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// DeleteFile removes one file. Deleting a missing file is not an error.
func (s *Store) DeleteFile(ctx context.Context, name string) error {
	if err := s.files.Delete(ctx, name); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
		return fmt.Errorf("delete file %s: %w", name, err)
	}
	return nil
}
