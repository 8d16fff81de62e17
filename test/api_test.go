//go:build stack

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// The API tests drive the real API binary, in front of the real stack with
// its workers: what the portal sees, end to end.

const portalToken, staffToken = "e2e-portal", "e2e-staff"

var (
	apiOnce sync.Once
	apiAddr string
	apiProc *proc
	apiErr  error
)

func startAPI(ctx context.Context) (*proc, error) {
	return startAPIAt(ctx, "api", apiAddr,
		"GRADEFLOW_RATE_PER_MINUTE=6000", "GRADEFLOW_RATE_BURST=1000",
		// Fresher queue statistics than the default 2 s: the ETA benchmark
		// polls one submission at a time, not thousands.
		"GRADEFLOW_QUEUE_CACHE=250ms")
}

// startAPIAt starts an API process named name on addr, with the test
// tokens and extraEnv, and waits until it is ready.
func startAPIAt(ctx context.Context, name, addr string, extraEnv ...string) (*proc, error) {
	env := append(stk.env(), "GRADEFLOW_API_ADDR="+addr,
		"GRADEFLOW_PORTAL_TOKENS="+portalToken, "GRADEFLOW_STAFF_TOKENS="+staffToken)
	p, err := stk.Start(name, filepath.Join(stk.bin, "gradeflow-api"), append(env, extraEnv...))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if p.Exited() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("API did not become ready (log %s)", p.LogPath)
}

// api returns the address of the shared API process, starting it once.
func api(t testing.TB) string {
	t.Helper()
	apiOnce.Do(func() {
		apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
		apiProc, apiErr = startAPI(context.Background())
	})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return "http://" + apiAddr
}

// postSubmission posts a directory's files as the portal does.
func postSubmission(base, token, id, student, dir string, files map[string][]byte) (*http.Response, []byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("assignment", "wordcount")
	_ = mw.WriteField("student", student)
	if id != "" {
		_ = mw.WriteField("id", id)
	}
	for name, data := range files {
		w, err := mw.CreateFormFile("files", name)
		if err != nil {
			return nil, nil, err
		}
		_, _ = w.Write(data)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/submissions", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func getJSON(base, token, path string, v any) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// TestAPIGradesSubmission posts a correct submission through the API and
// follows it to its grade, as a student's browser would.
func TestAPIGradesSubmission(t *testing.T) {
	base := api(t)
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	resp, body, err := postSubmission(base, portalToken, "", "api-student", dir, readFiles(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	var accepted struct {
		ID        string `json:"id"`
		StatusURL string `json:"status_url"`
	}
	if err := json.Unmarshal(body, &accepted); err != nil || accepted.ID == "" {
		t.Fatalf("POST answer %s: %v", body, err)
	}
	var sub struct {
		store.Submission
		Position   *int64   `json:"position"`
		ETASeconds *float64 `json:"eta_seconds"`
	}
	sawWaiting := false
	waitFor(t, 3*time.Minute, "graded through the API", func() (bool, error) {
		code, err := getJSON(base, portalToken, accepted.StatusURL, &sub)
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET %d: %v", code, err)
		}
		if sub.Position != nil && sub.ETASeconds != nil {
			sawWaiting = true
		}
		return sub.Stage == contract.StageDone, nil
	})
	if sub.Outcome != contract.OutcomePassed || sub.Score != 100 || sub.MaxScore != 100 {
		t.Fatalf("graded %s %g/%g", sub.Outcome, sub.Score, sub.MaxScore)
	}
	if sub.Times.ExecuteStarted == nil || sub.Times.Completed == nil {
		t.Errorf("stage times missing: %+v", sub.Times)
	}
	t.Logf("position/eta seen while waiting: %v", sawWaiting)

	var q struct {
		ExecutionSlots int `json:"execution_slots"`
	}
	if code, err := getJSON(base, portalToken, "/v1/queue", &q); err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/queue: %d %v", code, err)
	}
	if q.ExecutionSlots < 1 {
		t.Errorf("queue reports %d execution slots with an execute worker running", q.ExecutionSlots)
	}
}

// TestChaosAPIRestart restarts the API in the middle of a burst of posts.
// The portal retries a failed post with the same id; every submission the
// API accepted is graded, once.
func TestChaosAPIRestart(t *testing.T) {
	base := api(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	files := readFiles(t, dir)
	n := envInt("CHAOS_BURST", 10)
	batch := randHex(3)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = fmt.Sprintf("chaos-api-%s-%d", batch, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 150 * time.Millisecond)
			for ctx.Err() == nil {
				resp, _, err := postSubmission(base, portalToken, ids[i], "chaos-api", dir, files)
				if err == nil && (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK) {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Duration(n) * 150 * time.Millisecond / 3)
	apiProc.Terminate(20 * time.Second)
	p, err := startAPI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apiProc = p
	wg.Wait()
	checkGradedOnce(t, ctx, ids)
}
