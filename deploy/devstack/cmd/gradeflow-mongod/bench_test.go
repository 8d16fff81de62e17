package main

// Benchmarks report the mean as ns/op and the median as p50-us. FerretDB's
// SQLite backend scans whole tables for most operations, so latency depends
// on collection size; each benchmark runs at a few fixed sizes.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// reportMedian adds the median of samples as metric "<prefix>p50-us".
func reportMedian(b *testing.B, prefix string, samples []time.Duration) {
	b.Helper()

	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), prefix+"p50-us")
}

// BenchmarkStartup measures run until the ready line, on an empty data dir.
func BenchmarkStartup(b *testing.B) {
	var samples []time.Duration
	dir := b.TempDir()

	n := 0
	for b.Loop() {
		n++
		_, took, stop := launch(b, filepath.Join(dir, fmt.Sprint(n)))
		samples = append(samples, took)
		if err := stop(); err != nil {
			b.Fatal(err)
		}
	}
	reportMedian(b, "", samples)
}

// fillSubmissions inserts n submission documents of about 400 bytes each.
func fillSubmissions(b *testing.B, ctx context.Context, coll *mongo.Collection, n int) {
	b.Helper()

	note := strings.Repeat("x", 200)
	docs := make([]any, 0, 1000)
	for i := range n {
		docs = append(docs, bson.D{
			{Key: "_id", Value: fmt.Sprintf("fill-%06d", i)},
			{Key: "owner", Value: "bob"},
			{Key: "stage", Value: "done"},
			{Key: "queued_at", Value: ts(i % 60)},
			{Key: "attempts", Value: bson.D{{Key: "execute", Value: 1}}},
			{Key: "times", Value: bson.D{{Key: "sanity_started", Value: ts(1)}}},
			{Key: "workers", Value: bson.A{"w1"}},
			{Key: "note", Value: note},
		})
		if len(docs) == cap(docs) || i == n-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
			docs = docs[:0]
		}
	}
}

// BenchmarkUpsert measures one single-document UpdateOne with upsert by
// string _id: "insert" creates a new document, "update" changes an existing
// one (a real write: updated_at changes every time).
func BenchmarkUpsert(b *testing.B) {
	client := newClient(b, startServer(b))
	ctx := b.Context()
	upsert := options.UpdateOne().SetUpsert(true)

	for _, size := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("insert/docs=%d", size), func(b *testing.B) {
			coll := client.Database("bench").Collection(fmt.Sprintf("insert_%d", size))
			fillSubmissions(b, ctx, coll, size)

			var samples []time.Duration
			n := 0
			for b.Loop() {
				n++
				filter := bson.D{{Key: "_id", Value: fmt.Sprintf("new-%d", n)}}
				start := time.Now()
				if _, err := coll.UpdateOne(ctx, filter, storeUpdate("alice", ts(0), "queued", 1, ts(1)), upsert); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))

				b.StopTimer()
				if _, err := coll.DeleteOne(ctx, filter); err != nil { // keep the size fixed
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportMedian(b, "", samples)
		})

		b.Run(fmt.Sprintf("update/docs=%d", size), func(b *testing.B) {
			coll := client.Database("bench").Collection(fmt.Sprintf("update_%d", size))
			fillSubmissions(b, ctx, coll, size)

			var samples []time.Duration
			filter := bson.D{{Key: "_id", Value: "existing"}}
			n := 0
			for b.Loop() {
				n++
				start := time.Now()
				// No $push, so the document does not grow.
				if _, err := coll.UpdateOne(ctx, filter, bson.D{
					{Key: "$setOnInsert", Value: bson.D{{Key: "owner", Value: "alice"}}},
					{Key: "$set", Value: bson.D{{Key: "stage", Value: "running"}, {Key: "updated_at", Value: ts(0).Add(time.Duration(n) * time.Millisecond)}}},
					{Key: "$max", Value: bson.D{{Key: "attempts.execute", Value: n}}},
					{Key: "$min", Value: bson.D{{Key: "times.sanity_started", Value: ts(1)}}},
					{Key: "$addToSet", Value: bson.D{{Key: "workers", Value: "w1"}}},
				}, upsert); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))
			}
			reportMedian(b, "", samples)
		})
	}
}

// BenchmarkGridFS1MB measures uploading a 1 MB file and downloading it by
// id, with the bucket already holding 0 or 16 MB of other files.
func BenchmarkGridFS1MB(b *testing.B) {
	client := newClient(b, startServer(b))
	ctx := b.Context()
	data := randomBytes(b, 1<<20)

	for _, fillMB := range []int{0, 16} {
		b.Run(fmt.Sprintf("bucket=%dMB", fillMB), func(b *testing.B) {
			bucket := client.Database("bench").GridFSBucket(options.GridFSBucket().SetName(fmt.Sprintf("files%d", fillMB)))
			for i := range fillMB {
				if _, err := bucket.UploadFromStream(ctx, fmt.Sprintf("fill/%d", i), bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}

			var total, up, down []time.Duration
			n := 0
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				n++
				start := time.Now()
				id, err := bucket.UploadFromStream(ctx, fmt.Sprintf("submissions/%d/src", n), bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				uploaded := time.Now()
				s, err := bucket.OpenDownloadStream(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				got, err := io.ReadAll(s)
				s.Close()
				if err != nil {
					b.Fatal(err)
				}
				end := time.Now()
				total = append(total, end.Sub(start))
				up = append(up, uploaded.Sub(start))
				down = append(down, end.Sub(uploaded))

				b.StopTimer()
				if !bytes.Equal(got, data) {
					b.Fatal("downloaded data differs")
				}
				if err := bucket.Delete(ctx, id); err != nil { // keep the bucket size fixed
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportMedian(b, "", total)
			reportMedian(b, "up-", up)
			reportMedian(b, "down-", down)
		})
	}
}
