//go:build stack

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// Burst shape: burstSize submissions posted by burstWorkers goroutines at once.
const (
	burstSize    = 1000
	burstWorkers = 50
)

// BenchmarkP3Burst posts 1,000 submissions concurrently to a real API server
// on the real stack, then reads each back, and checks that every one was
// accepted, stored and started: none lost, none doubled.
//
//	go test -run '^$' -bench Burst -benchtime 1x ./api/
func BenchmarkP3Burst(b *testing.B) {
	cfg := testConfig()
	cfg.RatePerMinute, cfg.RateBurst = 0, 0 // the burst is one client's, not students'
	cfg.QueueCacheTTL = 2 * time.Second     // as deployed
	cfg.MaxUpload = 16 << 20
	e := newEnv(b, &cfg, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: burstWorkers, MaxConnsPerHost: burstWorkers}}
	defer client.CloseIdleConnections()

	var posts, gets []time.Duration
	var elapsed time.Duration
	b.StopTimer()
	for i := range b.N {
		asg := fmt.Sprintf("bench-%d-%s", i, randHex(4))
		e.seedAssignment(asg, "")
		ids := make([]string, burstSize)
		for j := range ids {
			ids[j] = fmt.Sprintf("%s-%04d", asg, j)
		}
		bodies, types := make([][]byte, burstSize), make([]string, burstSize)
		for j, id := range ids {
			buf, ct := multipartBody(b, submissionParts(asg, fmt.Sprintf("student-%03d", j%300), id)...)
			bodies[j], types[j] = buf.Bytes(), ct
		}

		b.StartTimer()
		start := time.Now()
		p, failures := burst(client, burstSize, func(j int) (*http.Request, int) {
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/v1/submissions", bytes.NewReader(bodies[j]))
			req.Header.Set("Content-Type", types[j])
			req.Header.Set("Authorization", "Bearer "+portalToken)
			return req, http.StatusAccepted
		})
		elapsed += time.Since(start)
		b.StopTimer()
		if len(failures) > 0 {
			b.Fatalf("%d of %d submissions not accepted; first: %s", len(failures), burstSize, failures[0])
		}
		posts = append(posts, p...)
		b.Logf("burst %d: %d posts in %v", i, burstSize, time.Since(start).Round(time.Millisecond))
		getStart := time.Now()

		g, failures := burst(client, burstSize, func(j int) (*http.Request, int) {
			req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/v1/submissions/"+ids[j], nil)
			req.Header.Set("Authorization", "Bearer "+portalToken)
			return req, http.StatusOK
		})
		if len(failures) > 0 {
			b.Fatalf("%d of %d reads failed; first: %s", len(failures), burstSize, failures[0])
		}
		gets = append(gets, g...)
		b.Logf("burst %d: %d gets in %v", i, burstSize, time.Since(getStart).Round(time.Millisecond))
		verifyStart := time.Now()
		verifyBurst(b, e, asg, ids)
		b.Logf("burst %d: verified in %v", i, time.Since(verifyStart).Round(time.Millisecond))
	}
	b.ReportMetric(float64(burstSize*b.N)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(ms(percentile(posts, 50)), "p50_post_ms")
	b.ReportMetric(ms(percentile(posts, 99)), "p99_post_ms")
	b.ReportMetric(ms(percentile(gets, 50)), "p50_get_ms")
	b.ReportMetric(ms(percentile(gets, 99)), "p99_get_ms")
}

// burst runs n requests from burstWorkers goroutines and returns their
// latencies and the failures (answers other than the wanted status).
func burst(client *http.Client, n int, mk func(int) (*http.Request, int)) ([]time.Duration, []string) {
	latencies := make([]time.Duration, n)
	var mu sync.Mutex
	var failures []string
	next := make(chan int)
	var wg sync.WaitGroup
	for range burstWorkers {
		wg.Go(func() {
			for j := range next {
				req, want := mk(j)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != want {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					}
				}
				latencies[j] = time.Since(t0)
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("request %d: %v", j, err))
					mu.Unlock()
				}
			}
		})
	}
	for j := range n {
		next <- j
	}
	close(next)
	wg.Wait()
	return latencies, failures
}

// verifyBurst checks that every submission of the burst has its document,
// its files and exactly one workflow.
func verifyBurst(b *testing.B, e *testEnv, asg string, ids []string) {
	ctx := context.Background()
	n, err := e.store.DB().Collection(store.SubmissionsCollection).CountDocuments(ctx, bson.D{{Key: "assignment", Value: asg}})
	if err != nil || n != int64(len(ids)) {
		b.Fatalf("%d submission documents, want %d (err %v)", n, len(ids), err)
	}
	files, err := stacktest.Files(ctx, e.store.DB(), store.FilesBucket, "submissions/"+asg+"-")
	if err != nil || len(files) != 2*len(ids) {
		b.Fatalf("%d submission files, want %d (err %v)", len(files), 2*len(ids), err)
	}
	// Visibility is eventually consistent: poll until every start shows.
	query := fmt.Sprintf(`WorkflowType="Submission" AND GradeflowAssignment=%q`, asg)
	deadline := time.Now().Add(2 * time.Minute)
	var count int64
	for {
		resp, err := stack.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err != nil {
			b.Fatal(err)
		}
		if count = resp.GetCount(); count >= int64(len(ids)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if count != int64(len(ids)) {
		b.Fatalf("%d workflows visible, want %d", count, len(ids))
	}
	// And each submission's own document is readable and in stage submitted.
	var sub map[string]any
	r := e.get(portalToken, "/v1/submissions/"+ids[len(ids)-1])
	if err := json.Unmarshal(r.body, &sub); err != nil || sub["stage"] != "submitted" {
		b.Fatalf("last submission: %d %s", r.status, r.body)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
