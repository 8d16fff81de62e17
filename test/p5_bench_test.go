//go:build stack

package test

import (
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/store"
)

// BenchmarkP5ETAError: under a steady load posted through the API, the
// start time each submission is promised right after its POST (now +
// start_eta_seconds) against when it really started running. The error is
// relative to the real wait; the benchmark reports its median. Every
// other submission is one student's, the rest each another student's, so
// that fair dispatch (the default; GRADEFLOW_FAIRNESS=off for FIFO)
// reorders the queue: the ETA has to follow the server's order.
func BenchmarkP5ETAError(b *testing.B) {
	base := api(b)
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	files := readFiles(b, dir)
	// Warm up so the API has measured run times, and learn the service time.
	warm := time.Now()
	for i := 0; i < 2; i++ {
		submit(b, b.Context(), fmt.Sprintf("p5-warm-%s-%d", randHex(3), i), dir)
	}
	perJob := time.Since(warm) / 2
	var q struct {
		ExecutionSlots int `json:"execution_slots"`
	}
	if _, err := getJSON(base, staffToken, "/v1/queue", &q); err != nil || q.ExecutionSlots < 1 {
		b.Fatalf("queue: %+v %v", q, err)
	}
	// Arrivals at about the service rate: a queue forms and drains.
	interval := perJob / time.Duration(q.ExecutionSlots)
	const n = 24
	var errs []float64
	for round := 0; round < b.N; round++ {
		batch := randHex(3)
		type promise struct {
			id      string
			posted  time.Time
			predict time.Time
		}
		var ps []promise
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("p5-%s-%d", batch, i)
			posted := time.Now()
			student := "p5-heavy-" + batch
			if i%2 == 1 {
				student = id
			}
			resp, body, err := postSubmission(base, portalToken, id, student, dir, files)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				b.Fatalf("post %s: %v %s", id, err, body)
			}
			var v struct {
				StartETASeconds *float64 `json:"start_eta_seconds"`
			}
			if code, err := getJSON(base, portalToken, "/v1/submissions/"+id, &v); err != nil || code != http.StatusOK {
				b.Fatalf("get %s: %d %v", id, code, err)
			}
			if v.StartETASeconds != nil {
				ps = append(ps, promise{id, posted, time.Now().Add(time.Duration(*v.StartETASeconds * float64(time.Second)))})
			}
			time.Sleep(interval - time.Since(posted)%interval)
		}
		for _, p := range ps {
			var sub store.Submission
			waitFor(b, 5*time.Minute, p.id+" to start", func() (bool, error) {
				s, err := stk.store.Submission(b.Context(), p.id)
				sub = s
				return err == nil && s.Times.ExecuteStarted != nil, err
			})
			wait := sub.Times.ExecuteStarted.Sub(p.posted)
			miss := sub.Times.ExecuteStarted.Sub(p.predict)
			errs = append(errs, math.Abs(miss.Seconds())/max(wait.Seconds(), 0.5))
			b.Logf("%s: waited %.1fs, promised %.1fs", p.id, wait.Seconds(), p.predict.Sub(p.posted).Seconds())
		}
	}
	if len(errs) == 0 {
		b.Fatal("no ETA was given")
	}
	b.ReportMetric(100*median(errs), "median_start_eta_error_%")
	b.ReportMetric(float64(len(errs)), "predictions")
	b.ReportMetric(interval.Seconds(), "arrival_interval_s")
}
