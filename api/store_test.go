//go:build stack

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gradeflow/gradeflow/store"
)

// TestPutFile checks the store's GridFS writes that submissions go
// through (tested here, where the real stack runs): files of every size
// read back through the driver, and rewriting a name replaces it whole,
// stray chunks of a failed write included.
func TestPutFile(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	const chunk = 255 * 1024
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/chunk)
		}
		return b
	}
	tests := []struct {
		name   string
		first  []byte
		second []byte // nil: written once
	}{
		{"empty", []byte{}, nil},
		{"small", []byte("print(1)\n"), nil},
		{"one chunk exactly", pattern(chunk), nil},
		{"chunk and a byte", pattern(chunk + 1), nil},
		{"several chunks", pattern(3*chunk + 17), nil},
		{"replace larger by smaller", pattern(2*chunk + 5), []byte("short")},
		{"replace smaller by larger", []byte("short"), pattern(2*chunk + 5)},
		{"replace by empty", []byte("x"), []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "test/" + randHex(4) + "/f"
			if err := e.store.PutFile(ctx, name, tt.first); err != nil {
				t.Fatal(err)
			}
			want := tt.first
			if tt.second != nil {
				if err := e.store.PutFile(ctx, name, tt.second); err != nil {
					t.Fatal(err)
				}
				want = tt.second
			}
			got, err := e.store.ReadFile(ctx, name, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, want %d", len(got), len(want))
			}
			dir := t.TempDir()
			if _, err := e.store.FetchDir(ctx, filepath.Dir(name)+"/", dir, 1<<30); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(data, want) {
				t.Errorf("fetched %d bytes (err %v), want %d", len(data), err, len(want))
			}
		})
	}
	t.Run("stray chunks of a failed write", func(t *testing.T) {
		name := "test/" + randHex(4) + "/f"
		if _, err := e.store.DB().Collection(store.FilesBucket+".chunks").InsertOne(ctx, bson.D{
			{Key: "_id", Value: bson.NewObjectID()}, {Key: "files_id", Value: name}, {Key: "n", Value: int32(0)},
			{Key: "data", Value: bson.Binary{Data: []byte("stale")}},
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.store.PutFile(ctx, name, []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		if got, err := e.store.ReadFile(ctx, name, 100); err != nil || string(got) != "fresh" {
			t.Errorf("read %q, %v", got, err)
		}
	})
}
