//go:build stack

package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/seed"
)

// BenchmarkP7StoreAtScale grows the stack's database through 0, 20,000 and
// 200,000 finished submissions (3,000 students, two 2.5 KB files each: 1 GB
// of files at 200k), seeded through the wire protocol by package seed, and
// at each level measures, side by side in this one run:
//   - grading a correct submission end to end (median of 5), and its ratio
//     to the empty store (goal ≤ 1.1);
//   - the API's p50/p99 for GET one submission (done, and waiting with its
//     queue position and ETA), a student's list (first and next page),
//     /v1/queue (goal p99 ≤ 50 ms), and POST (goal p99 ≤ 100 ms);
//   - the store's disk size and the seeding rate.
//
// The API it measures runs with its queue-statistics cache off
// (GRADEFLOW_QUEUE_CACHE=0): the figures are the design's, not a cache's.
// GRADEFLOW_P7_LEVELS overrides the levels (comma-separated).
func BenchmarkP7StoreAtScale(b *testing.B) {
	levels := []int{0, 20000, 200000}
	if v := os.Getenv("GRADEFLOW_P7_LEVELS"); v != "" {
		levels = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("GRADEFLOW_P7_LEVELS: %v", err)
			}
			levels = append(levels, n)
		}
	}
	ctx := context.Background()
	base := p7API(b)
	opts := seed.Defaults()
	correct := readFiles(b, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
	syntax := readFiles(b, filepath.Join(stk.root, exampleDir, "submissions/python-syntax-error"))
	db := stk.store.DB()

	// Warm the workers up first (JIT, caches, the first containers), so
	// that the empty store's grading is not the slowest by accident.
	for i := range 2 {
		id := fmt.Sprintf("p7-warm-%d-%s", i, randHex(3))
		got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "p7-grader", Files: correct})
		if err != nil {
			b.Fatal(err)
		}
		if err := got.Run.Get(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}

	var emptyGrading float64
	seeded := 0
	for _, level := range levels {
		if level > seeded {
			start := time.Now()
			if err := seed.Submissions(ctx, db, seeded, level, opts); err != nil {
				b.Fatal(err)
			}
			rate := float64(level-seeded) / time.Since(start).Seconds()
			seeded = level
			b.ReportMetric(rate, fmt.Sprintf("seed_subs/s@%s", kilo(level)))
			// A semester's history arrives over months, with the server's
			// maintenance keeping up; a bulk load leaves that maintenance
			// to run during the measurements. Do it first.
			settle(ctx, b)
		}
		tag := "@" + kilo(level)
		if size, ok := storeDiskMB(ctx, b); ok {
			b.ReportMetric(size, "disk_MB"+tag)
		}

		// Grading, end to end, through the intake (as the API submits).
		var grades []float64
		for i := range 5 {
			id := fmt.Sprintf("p7-grade-%s-%d-%s", kilo(level), i, randHex(3))
			start := time.Now()
			got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "p7-grader", Files: correct})
			if err != nil {
				b.Fatal(err)
			}
			var res contract.Result
			if err := got.Run.Get(ctx, &res); err != nil || res.Outcome != contract.OutcomePassed {
				b.Fatalf("grading %s: %v %+v", id, err, res)
			}
			grades = append(grades, time.Since(start).Seconds())
		}
		g := percentile(grades, 50)
		b.ReportMetric(g, "grading_s"+tag)
		if level == levels[0] {
			emptyGrading = g
		} else if emptyGrading > 0 {
			b.ReportMetric(g/emptyGrading, "grading_ratio"+tag)
		}

		// A few submissions waiting for a slot that never comes: stage
		// queued, no workflow. GET of one answers its position and ETA.
		var waiting []string
		for i := range 5 {
			id := fmt.Sprintf("p7-wait-%s-%d-%s", kilo(level), i, randHex(3))
			if _, err := stk.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wordcount", Student: "p7-waiter",
				Files: []string{"mapper.py"}, WorkflowID: contract.WorkflowID(id)}); err != nil {
				b.Fatal(err)
			}
			if err := stk.store.MarkStage(ctx, id, store.Mark{Stage: contract.StageQueued, At: time.Now()}); err != nil {
				b.Fatal(err)
			}
			waiting = append(waiting, id)
		}

		rng := rand.New(rand.NewPCG(uint64(level), 7))
		pick := func() int { return rng.IntN(max(level, 1)) }
		measure := func(name string, n int, path func() string) {
			var ms []float64
			for range n {
				p := path()
				start := time.Now()
				var v map[string]any
				code, err := getJSON(base, portalToken, p, &v)
				if err != nil || code != http.StatusOK {
					b.Fatalf("GET %s: %d %v", p, code, err)
				}
				ms = append(ms, float64(time.Since(start).Microseconds())/1000)
			}
			b.ReportMetric(percentile(ms, 50), name+"_p50_ms"+tag)
			b.ReportMetric(percentile(ms, 99), name+"_p99_ms"+tag)
		}
		const n = 200
		if level > 0 {
			measure("get_done", n, func() string { return "/v1/submissions/" + seed.ID(pick()) })
		}
		measure("get_waiting", n, func() string { return "/v1/submissions/" + waiting[rng.IntN(len(waiting))] })
		measure("list_first", n, func() string {
			return "/v1/submissions?limit=20&student=" + seed.Student(pick(), opts)
		})
		measure("list_next", n, func() string {
			p := "/v1/submissions?limit=20&student=" + seed.Student(pick(), opts)
			var page struct {
				Next string `json:"next_cursor"`
			}
			if _, err := getJSON(base, portalToken, p, &page); err != nil {
				b.Fatal(err)
			}
			if page.Next == "" {
				return p // a student with one page: the first again
			}
			return p + "&cursor=" + page.Next
		})
		measure("queue", n, func() string { return "/v1/queue" })

		// POST: 100 submissions whose sanity check fails fast, so that
		// they leave the queue quickly; each answer is timed, then the
		// level waits for them to finish.
		var posts []float64
		var posted []string
		for i := range 100 {
			id := fmt.Sprintf("p7-post-%s-%d-%s", kilo(level), i, randHex(3))
			start := time.Now()
			resp, body, err := postSubmission(base, portalToken, id, fmt.Sprintf("p7-poster-%d", i), "", syntax)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				b.Fatalf("POST %s: %v %s", id, err, body)
			}
			posts = append(posts, float64(time.Since(start).Microseconds())/1000)
			posted = append(posted, id)
		}
		b.ReportMetric(percentile(posts, 50), "post_p50_ms"+tag)
		b.ReportMetric(percentile(posts, 99), "post_p99_ms"+tag)
		for _, id := range posted {
			var res contract.Result
			if err := stk.temporal.GetWorkflow(ctx, contract.WorkflowID(id), "").Get(ctx, &res); err != nil {
				b.Fatalf("posted %s: %v", id, err)
			}
		}
		// The waiting ones leave the queue before the next level.
		for _, id := range waiting {
			if err := stk.store.Record(ctx, id, store.Submission{}, contract.Grade{Status: contract.StatusCanceled}, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// p7API starts an API of its own for P7, with the queue-statistics cache
// off, and returns its base URL.
func p7API(b *testing.B) string {
	b.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	p, err := startAPIAt(context.Background(), "api-p7", addr, "GRADEFLOW_RATE_PER_MINUTE=0", "GRADEFLOW_QUEUE_CACHE=0s")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Terminate(10 * time.Second) })
	return "http://" + addr
}

// settle runs the maintenance a bulk load owes on the embedded server
// (VACUUM ANALYZE of its PostgreSQL database, then a checkpoint of the
// gigabytes the load wrote, which would otherwise be flushed during the
// measurements); a MongoDB needs none.
func settle(ctx context.Context, b *testing.B) {
	if stk.MongoDir == "" {
		return
	}
	for _, sql := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
		out, err := exec.CommandContext(ctx, "psql", "-X", "-q", "-h", filepath.Join(stk.MongoDir, "pg", "run"),
			"-U", "postgres", "-d", "ferretdb", "-c", sql).CombinedOutput()
		if err != nil {
			b.Fatalf("%s: %v: %s", sql, err, out)
		}
	}
}

// storeDiskMB is the size of the store: the embedded server's PostgreSQL
// data directory, or the database's storage size on a MongoDB.
func storeDiskMB(ctx context.Context, b *testing.B) (float64, bool) {
	if stk.MongoDir != "" {
		out, err := exec.CommandContext(ctx, "du", "-sk", filepath.Join(stk.MongoDir, "pg", "data")).Output()
		if err != nil {
			return 0, false
		}
		kb, err := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
		return kb / 1024, err == nil
	}
	var stats struct {
		StorageSize float64 `bson:"storageSize"`
	}
	if err := stk.store.DB().RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&stats); err != nil {
		return 0, false
	}
	return stats.StorageSize / (1 << 20), true
}

func kilo(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// percentile is the p-th percentile of xs (nearest rank).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
