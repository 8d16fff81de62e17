package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gradeflow/gradeflow/contract"
)

// Files stored by content: assignments' input and expected files, and
// datasets. A blob's name is its SHA-256 (contract.BlobName), so a file
// that several tests or assignments share is stored once, and an execute
// host caches it once by hash. Blobs are never replaced (same name, same
// content) and outlive the assignments that name them.

// PutBlob stores data by content and describes it as the file name.
func (s *Store) PutBlob(ctx context.Context, name string, data []byte) (contract.FileRef, error) {
	sum := sha256.Sum256(data)
	ref := contract.FileRef{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	name2 := contract.BlobName(ref.SHA256)
	if id, ok, err := s.fileID(ctx, name2); err != nil || ok {
		ref.Blob = id
		return ref, err
	}
	ref.Blob = name2
	err := s.putBytes(ctx, ref.Blob, data)
	if err != nil && !mongo.IsDuplicateKeyError(err) { // a duplicate: another upload of the same content
		return contract.FileRef{}, fmt.Errorf("upload blob %s: %w", ref.Blob, err)
	}
	return ref, nil
}

// PutBlobFrom streams r into the store by content, never holding it in
// memory, failing with ErrTooLarge beyond max bytes. It uploads under a
// temporary name while hashing, then renames the file to its hash (or, if
// that content is stored already, drops the copy). progress, if set, is
// called with the bytes read so far after each chunk.
func (s *Store) PutBlobFrom(ctx context.Context, name string, r io.Reader, max int64, progress func(int64)) (contract.FileRef, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h), max: max, progress: progress}
	// The upload's ID stays its GridFS ID; its name becomes the hash.
	tmp := "blobs/upload/" + randomHex(12)
	if err := s.files.UploadFromStreamWithID(ctx, tmp, tmp, cr); err != nil {
		s.dropTemp(tmp)
		if cr.over {
			return contract.FileRef{}, fmt.Errorf("blob %s: more than %d bytes: %w", name, max, ErrTooLarge)
		}
		return contract.FileRef{}, fmt.Errorf("upload blob %s: %w", name, err)
	}
	ref := contract.FileRef{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cr.n}
	blobName := contract.BlobName(ref.SHA256)
	id, exists, err := s.fileID(ctx, blobName)
	if err != nil {
		s.dropTemp(tmp)
		return contract.FileRef{}, err
	}
	if exists {
		s.dropTemp(tmp)
		ref.Blob = id
		return ref, nil
	}
	if err := s.files.Rename(ctx, tmp, blobName); err != nil {
		s.dropTemp(tmp)
		return contract.FileRef{}, fmt.Errorf("name blob %s: %w", blobName, err)
	}
	ref.Blob = tmp
	return ref, nil
}

func (s *Store) dropTemp(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.DeleteFile(ctx, name)
}

// fileID returns the GridFS ID of the file named name, if one is stored.
func (s *Store) fileID(ctx context.Context, name string) (string, bool, error) {
	var f struct {
		ID string `bson:"_id"`
	}
	err := s.db.Collection(FilesBucket+".files").FindOne(ctx, bson.D{{Key: "filename", Value: name}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&f)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("look up file %s: %w", name, err)
	}
	return f.ID, true, nil
}

// FetchBlob downloads one stored file to dst, streaming, failing with
// ErrTooLarge beyond max bytes.
func (s *Store) FetchBlob(ctx context.Context, name, dst string, max int64) (int64, error) {
	return s.fetchOne(ctx, name, dst, max)
}

type countingReader struct {
	r        io.Reader
	n, max   int64
	over     bool
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		c.over = true
		return n, ErrTooLarge
	}
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// DatasetsCollection holds the named datasets: name → blob.
const DatasetsCollection = "datasets"

// Dataset is a named, stored input file.
type Dataset struct {
	Name      string    `bson:"_id" json:"name"`
	SHA256    string    `bson:"sha256" json:"sha256"`
	Size      int64     `bson:"size" json:"size"`
	Blob      string    `bson:"blob" json:"-"`
	UpdatedAt time.Time `bson:"updated_at" json:"updated_at"`
}

// PutDataset names a stored blob. Assignments resolve the name when they
// are stored, so that replacing a dataset changes no assignment until it
// is stored again.
func (s *Store) PutDataset(ctx context.Context, name string, ref contract.FileRef) (Dataset, error) {
	d := Dataset{Name: name, SHA256: ref.SHA256, Size: ref.Size, Blob: ref.Blob, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := s.db.Collection(DatasetsCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: name}}, d, options.Replace().SetUpsert(true)); err != nil {
		return Dataset{}, fmt.Errorf("put dataset %s: %w", name, err)
	}
	return d, nil
}

// GetDataset returns the named dataset.
func (s *Store) GetDataset(ctx context.Context, name string) (Dataset, error) {
	var d Dataset
	err := s.db.Collection(DatasetsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Dataset{}, fmt.Errorf("dataset %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("find dataset %s: %w", name, err)
	}
	return d, nil
}
