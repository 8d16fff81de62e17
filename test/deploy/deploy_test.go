//go:build deploytest

package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// stackT is the running compose stack as the test sees it from the host.
type stackT struct {
	central, eval *project
	api           string // http://127.0.0.1:port
	ui            string
	portal, staff string // bearer tokens
	tc            client.Client
	workdir       string // host scratch of the sandbox workers
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := stacktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestComposeDeploy is issue 10's acceptance run on the compose stack, in
// order: up and healthy; the bundled examples through the API; a killed
// execute replica; a restarted Temporal server; the Web UI's filtered list;
// an evaluation-host project; down -v leaving nothing behind.
func TestComposeDeploy(t *testing.T) {
	root, err := stacktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	name := envOr("GRADEFLOW_DEPLOY_PROJECT", "gfdeploy")
	dir := t.TempDir()
	s := &stackT{portal: "portal-" + randHex(12), staff: "staff-" + randHex(12)}
	// The secrets of this run, generated: the env file the README tells a
	// course to write from gradeflow.env.example.
	envFile := filepath.Join(dir, "gradeflow.env")
	secrets := fmt.Sprintf("POSTGRES_PASSWORD=%s\nGRADEFLOW_PORTAL_TOKENS=%s\nGRADEFLOW_STAFF_TOKENS=%s\nGRADEFLOW_WEBHOOK_SECRET=%s\n",
		randHex(16), s.portal, s.staff, randHex(16))
	if err := os.WriteFile(envFile, []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	// The sandbox workers' scratch must be a host path (the engine mounts
	// it into the grading containers), outside the test's temp dir so that
	// root-owned leftovers never fail its cleanup.
	s.workdir, err = os.MkdirTemp("/var/tmp", name+"-work-")
	if err != nil {
		t.Fatal(err)
	}
	apiPort, uiPort, tPort, mPort := freePort(t), freePort(t), freePort(t), freePort(t)
	s.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	s.ui = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	env := []string{
		fmt.Sprintf("GRADEFLOW_API_PORT=%d", apiPort), fmt.Sprintf("GRADEFLOW_UI_PORT=%d", uiPort),
		fmt.Sprintf("GRADEFLOW_TEMPORAL_PORT=%d", tPort), fmt.Sprintf("GRADEFLOW_MONGO_PORT=%d", mPort),
		"GRADEFLOW_HOST_WORKDIR=" + s.workdir,
	}
	s.central = &project{root: root, name: name, files: []string{"deploy/compose/compose.yaml"}, envFile: envFile, env: env}
	s.eval = &project{root: root, name: name + "-eval", files: []string{"deploy/compose/compose.eval.yaml"}, envFile: envFile,
		env: append(env[:len(env):len(env)], "GRADEFLOW_CENTRAL_NETWORK="+name+"_default")}

	// A previous run that died may have left its projects: only ours go.
	for _, p := range []*project{s.eval, s.central} {
		if _, err := p.compose(ctx, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Fatal(err)
		}
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer ccancel()
			if t.Failed() {
				t.Logf("logs:\n%s", s.central.logs(cctx))
			}
			for _, p := range []*project{s.eval, s.central} {
				if _, err := p.compose(cctx, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
					t.Log(err)
				}
			}
		}
		_ = os.RemoveAll(s.workdir)
	})

	start := time.Now()
	if _, err := s.central.compose(ctx, "up", "-d"); err != nil {
		t.Fatalf("%v\n%s", err, s.central.logs(ctx))
	}
	upTook := time.Since(start)
	healthy, err := s.central.waitReady(ctx, 4*time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.central.logs(ctx))
	}
	t.Logf("TIMING up -d returned after %.1fs, every service healthy %.1fs later (%.1fs from up)",
		upTook.Seconds(), healthy.Seconds(), time.Since(start).Seconds())

	s.tc, err = temporalclient.Dial(ctx, temporalclient.Config{HostPort: fmt.Sprintf("127.0.0.1:%d", tPort), Namespace: "default"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.tc.Close()
	ns, err := s.tc.WorkflowService().DescribeNamespace(ctx, describeNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	nsID := ns.GetNamespaceInfo().GetId()

	steps := []struct {
		name string
		fn   func(*testing.T, context.Context, *stackT)
	}{
		{"Examples", testExamples},
		{"ExecuteReplicaKilled", testExecuteReplicaKilled},
		{"TemporalRestarted", testTemporalRestarted},
		{"WebUIFilter", testWebUI},
		{"EvaluationHost", testEvaluationHost},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.fn(t, ctx, s) }) {
			t.Fatalf("%s failed; logs:\n%s", st.name, s.central.logs(ctx))
		}
	}

	t.Run("DownLeavesNothing", func(t *testing.T) {
		start := time.Now()
		for _, p := range []*project{s.eval, s.central} {
			if _, err := p.compose(ctx, "down", "-v", "--remove-orphans"); err != nil {
				t.Fatal(err)
			}
		}
		downDone = true
		t.Logf("TIMING down -v of both projects %.1fs", time.Since(start).Seconds())
		for _, n := range []string{s.central.name, s.eval.name} {
			left, err := leftovers(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Errorf("project %s left %v", n, left)
			}
		}
		// Grading containers are the workers' own, not compose's: none of
		// this stack's namespace may outlive it.
		out, err := docker(ctx, "ps", "-aq", "--filter", "label="+"gradeflow.namespace="+nsID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("grading containers left: %s", out)
		}
	})
}

// expectation is an example's documented outcome (examples/*/outcomes.json).
type expectation struct {
	Outcome contract.Outcome `json:"outcome"`
	Score   *float64         `json:"score"`
}

// submission is the API's view of one submission.
type submission struct {
	store.Submission
	Position *int64 `json:"position"`
}

// putAssignment uploads an example assignment directory through the API.
func (s *stackT) putAssignment(t *testing.T, ctx context.Context, dir string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	cfg, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The name comes from the URL; the config part must not repeat it.
	var conf map[string]any
	if err := json.Unmarshal(cfg, &conf); err != nil {
		t.Fatal(err)
	}
	delete(conf, "name")
	cfg, _ = json.Marshal(conf)
	_ = mw.WriteField("config", string(cfg))
	for _, part := range []string{"input", "expected"} {
		for rel, data := range readFiles(t, filepath.Join(dir, part)) {
			w, _ := mw.CreateFormFile(part, rel)
			_, _ = w.Write(data)
		}
	}
	_ = mw.Close()
	name := filepath.Base(dir)
	code, b, err := s.do(ctx, http.MethodPut, "/v1/assignments/"+name, s.staff, mw.FormDataContentType(), &body)
	if err != nil || (code != http.StatusOK && code != http.StatusCreated) {
		t.Fatalf("PUT assignment %s: %d %s %v", name, code, b, err)
	}
}

// post submits files as the portal does; it returns the HTTP status.
func (s *stackT) post(ctx context.Context, id, assignment, student string, files map[string][]byte) (int, []byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("assignment", assignment)
	_ = mw.WriteField("student", student)
	_ = mw.WriteField("id", id)
	for name, data := range files {
		w, _ := mw.CreateFormFile("files", name)
		_, _ = w.Write(data)
	}
	_ = mw.Close()
	return s.do(ctx, http.MethodPost, "/v1/submissions", s.portal, mw.FormDataContentType(), &body)
}

// postRetrying posts until the API accepts (202) or returns the existing
// submission (200), as a portal retries a failed post with the same id.
func (s *stackT) postRetrying(ctx context.Context, id, assignment, student string, files map[string][]byte) error {
	for {
		code, b, err := s.post(ctx, id, assignment, student, files)
		if err == nil && (code == http.StatusAccepted || code == http.StatusOK) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("post %s: %d %s %v", id, code, b, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *stackT) do(ctx context.Context, method, path, token, contentType string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get reads a submission through the API.
func (s *stackT) get(ctx context.Context, id string) (submission, error) {
	var sub submission
	code, b, err := s.do(ctx, http.MethodGet, "/v1/submissions/"+url.PathEscape(id), s.portal, "", nil)
	if err != nil {
		return sub, err
	}
	if code != http.StatusOK {
		return sub, fmt.Errorf("GET %s: %d %s", id, code, b)
	}
	return sub, json.Unmarshal(b, &sub)
}

// awaitDone polls the API until the submission is done.
func (s *stackT) awaitDone(ctx context.Context, id string, timeout time.Duration) (submission, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		sub, err := s.get(ctx, id)
		if err == nil && sub.Stage == contract.StageDone {
			return sub, nil
		}
		if ctx.Err() != nil {
			return sub, fmt.Errorf("%s not done after %s (stage %q): %v", id, timeout, sub.Stage, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readFiles reads a submission directory as the portal would upload it.
func readFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := stacktest.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// testExamples grades every bundled wordcount example through the API, all
// posted at once as `make run` does, and checks its documented outcome.
func testExamples(t *testing.T, ctx context.Context, s *stackT) {
	ex := filepath.Join(s.central.root, "examples/wordcount")
	s.putAssignment(t, ctx, ex)
	raw, err := os.ReadFile(filepath.Join(ex, "outcomes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]expectation
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	batch := randHex(3)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	took := map[string]time.Duration{}
	for name, exp := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("ex-%s-%s", batch, name)
			posted := time.Now()
			if err := s.postRetrying(ctx, id, "wordcount", "student-"+name, readFiles(t, filepath.Join(ex, "submissions", name))); err != nil {
				t.Error(err)
				return
			}
			sub, err := s.awaitDone(ctx, id, 5*time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			took[name] = time.Since(posted)
			mu.Unlock()
			if sub.Outcome != exp.Outcome || (exp.Score != nil && sub.Score != *exp.Score) {
				t.Errorf("%s: %s %g/%g, want %s (score %v): %s", name, sub.Outcome, sub.Score, sub.MaxScore, exp.Outcome, fmtScore(exp.Score), sub.Feedback)
			}
		}()
	}
	wg.Wait()
	var lines []string
	for name, d := range took {
		lines = append(lines, fmt.Sprintf("%s=%.2fs", name, d.Seconds()))
	}
	t.Logf("TIMING examples through compose (all %d posted at once): %.2fs in all; %s", len(want), time.Since(start).Seconds(), strings.Join(sorted(lines), " "))

	// One correct submission alone: the latency a student sees on an idle stack.
	for i := range 3 {
		id := fmt.Sprintf("alone-%s-%d", batch, i)
		posted := time.Now()
		if err := s.postRetrying(ctx, id, "wordcount", "alone", readFiles(t, filepath.Join(ex, "submissions/python-correct"))); err != nil {
			t.Fatal(err)
		}
		sub, err := s.awaitDone(ctx, id, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Outcome != contract.OutcomePassed {
			t.Fatalf("%s: %s", id, sub.Outcome)
		}
		t.Logf("TIMING python-correct alone through compose: %.2fs (post to done, polled every 0.2s; %s)", time.Since(posted).Seconds(), stages(sub.Times))
	}
}

// stages renders a submission's stage times as the seconds each took.
func stages(ts store.Times) string {
	d := func(a, b *time.Time) string {
		if a == nil || b == nil {
			return "?"
		}
		return fmt.Sprintf("%.2fs", b.Sub(*a).Seconds())
	}
	return fmt.Sprintf("submitted→sanity %s, sanity→queued %s, queued→running %s, running %s, ended→completed %s",
		d(ts.Submitted, ts.SanityStarted), d(ts.SanityStarted, ts.Queued), d(ts.Queued, ts.ExecuteStarted),
		d(ts.ExecuteStarted, ts.ExecuteEnded), d(ts.ExecuteEnded, ts.Completed))
}

func fmtScore(p *float64) string {
	if p == nil {
		return "any"
	}
	return fmt.Sprint(*p)
}

func sorted(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// countCompleted counts the completed activities of a type in a workflow's
// history.
func (s *stackT) countCompleted(ctx context.Context, id, activityType string) (int, error) {
	it := s.tc.GetWorkflowHistory(ctx, contract.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, err
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == activityType {
			n++
		}
	}
	return n, nil
}

// checkGradedOnce waits for every submission to pass and checks that each
// step of it completed exactly once in its workflow history.
func (s *stackT) checkGradedOnce(t *testing.T, ctx context.Context, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := s.awaitDone(ctx, id, 6*time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if sub.Status != contract.StatusGraded || sub.Outcome != contract.OutcomePassed {
				t.Errorf("%s: %s/%s, want graded/passed: %s", id, sub.Status, sub.Outcome, sub.Feedback)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		for _, act := range []string{contract.ActivitySanity, contract.ActivityExecute, contract.ActivityCompare, contract.ActivityRecord} {
			n, err := s.countCompleted(ctx, id, act)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%s: %s completed %d times, want 1", id, act, n)
			}
		}
	}
}

// runningOn waits until the submission's execute step has started and
// returns the identity of the worker running it (<pid>@<hostname>).
func (s *stackT) runningOn(ctx context.Context, id string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		desc, err := s.tc.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
		if err == nil {
			for _, pa := range desc.GetPendingActivities() {
				if pa.GetActivityType().GetName() == contract.ActivityExecute && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
					return pa.GetLastWorkerIdentity(), nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("%s: execute step not started after %s", id, timeout)
}

// containerOf finds the project container whose hostname a worker
// identity names.
func containerOf(ctx context.Context, p *project, identity string) (container, error) {
	host := identity[strings.IndexByte(identity, '@')+1:]
	cs, err := p.containers(ctx)
	if err != nil {
		return container{}, err
	}
	for _, c := range cs {
		if strings.HasPrefix(c.ID, host) {
			return c, nil
		}
	}
	return container{}, fmt.Errorf("no container of %s has hostname %s", p.name, host)
}

// testExecuteReplicaKilled scales worker-execute to 2, SIGKILLs the replica
// running a job mid-job, and checks that every submission of the burst is
// graded exactly once (the other replica takes the job over after the
// heartbeat timeout).
func testExecuteReplicaKilled(t *testing.T, ctx context.Context, s *stackT) {
	if _, err := s.central.compose(ctx, "up", "-d", "--no-recreate", "--scale", "worker-execute=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.central.waitReady(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	files := readFiles(t, filepath.Join(s.central.root, "test/testdata/slow-correct"))
	batch := randHex(3)
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = fmt.Sprintf("kill-%s-%d", batch, i)
		if err := s.postRetrying(ctx, ids[i], "wordcount", fmt.Sprintf("kill-%d", i), files); err != nil {
			t.Fatal(err)
		}
	}
	who, err := s.runningOn(ctx, ids[0], 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := containerOf(ctx, s.central, who)
	if err != nil {
		t.Fatal(err)
	}
	if c.Service != "worker-execute" {
		t.Fatalf("%s runs on %s, a %s container", ids[0], c.Name, c.Service)
	}
	time.Sleep(time.Second) // mid-job: the slow mapper sleeps 8 s
	if _, err := docker(ctx, "kill", "--signal", "KILL", c.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s (worker %s) while it ran %s", c.Name, who, ids[0])
	s.checkGradedOnce(t, ctx, ids)
	// The killed replica's container is gone; put the service back to one
	// healthy replica for the next steps.
	if _, err := s.central.compose(ctx, "up", "-d", "--scale", "worker-execute=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.central.waitReady(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// testTemporalRestarted restarts the Temporal server container in the
// middle of a burst of posts; the portal retries failed posts with the
// same id, and every submission is graded exactly once.
func testTemporalRestarted(t *testing.T, ctx context.Context, s *stackT) {
	files := readFiles(t, filepath.Join(s.central.root, "examples/wordcount/submissions/python-correct"))
	batch := randHex(3)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = fmt.Sprintf("restart-%s-%d", batch, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 400 * time.Millisecond)
			if err := s.postRetrying(ctx, ids[i], "wordcount", fmt.Sprintf("restart-%d", i), files); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(1200 * time.Millisecond)
	start := time.Now()
	if _, err := s.central.compose(ctx, "restart", "temporal"); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING temporal container restarted in %.1fs", time.Since(start).Seconds())
	wg.Wait()
	s.checkGradedOnce(t, ctx, ids)
	if _, err := s.central.waitReady(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// testWebUI asks the Web UI's HTTP API for the workflows of a search
// attribute filter, as the UI's list page does.
func testWebUI(t *testing.T, ctx context.Context, s *stackT) {
	resp, err := http.Get(s.ui + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(bytes.ToLower(page), []byte("<html")) {
		t.Fatalf("UI /: %d %.200s", resp.StatusCode, page)
	}
	query := `GradeflowAssignment="wordcount" AND GradeflowOutcome="passed"`
	var list struct {
		Executions []struct {
			Execution struct {
				WorkflowID string `json:"workflowId"`
			} `json:"execution"`
		} `json:"executions"`
	}
	var body []byte
	// Visibility is eventually consistent: the last records land shortly
	// after the workflows close.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.ui + "/api/v1/namespaces/default/workflows?query=" + url.QueryEscape(query))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("UI workflows: %d %.300s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("UI workflows: %v: %.300s", err, body)
		}
		// 2 passing examples + 3 alone + 4 kill + 8 restart.
		if len(list.Executions) >= 17 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(list.Executions) < 17 {
		t.Fatalf("UI lists %d workflows for %s, want at least 17", len(list.Executions), query)
	}
	for _, e := range list.Executions {
		if !strings.HasPrefix(e.Execution.WorkflowID, "submission-") {
			t.Errorf("UI lists %q", e.Execution.WorkflowID)
		}
	}
	t.Logf("UI lists the %d passed wordcount workflows for %s", len(list.Executions), query)
	// And a filter that must exclude them all.
	resp, err = http.Get(s.ui + "/api/v1/namespaces/default/workflows?query=" + url.QueryEscape(`GradeflowOutcome="no_such_outcome"`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	list.Executions = nil
	if err := json.Unmarshal(body, &list); err != nil || len(list.Executions) != 0 {
		t.Fatalf("UI lists %d workflows for an outcome no submission has (%v)", len(list.Executions), err)
	}
}

// testEvaluationHost runs the sandbox workers as a second compose project
// joined to the central project's network, stops the central project's own
// sandbox workers, and checks that submissions are then checked and run by
// the evaluation project's workers.
func testEvaluationHost(t *testing.T, ctx context.Context, s *stackT) {
	if _, err := s.eval.compose(ctx, "up", "-d"); err != nil {
		t.Fatalf("%v\n%s", err, s.eval.logs(ctx))
	}
	if _, err := s.eval.waitReady(ctx, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, s.eval.logs(ctx))
	}
	if _, err := s.central.compose(ctx, "stop", "worker-execute", "worker-sanity"); err != nil {
		t.Fatal(err)
	}
	batch := randHex(3)
	for _, name := range []string{"python-correct", "java-correct"} {
		id := fmt.Sprintf("eval-%s-%s", batch, name)
		files := readFiles(t, filepath.Join(s.central.root, "examples/wordcount/submissions", name))
		if err := s.postRetrying(ctx, id, "wordcount", "eval-"+name, files); err != nil {
			t.Fatal(err)
		}
		sub, err := s.awaitDone(ctx, id, 3*time.Minute)
		if err != nil {
			t.Fatalf("%v\n%s", err, s.eval.logs(ctx))
		}
		if sub.Outcome != contract.OutcomePassed {
			t.Fatalf("%s: %s: %s", id, sub.Outcome, sub.Feedback)
		}
		for _, act := range []string{contract.ActivitySanity, contract.ActivityExecute} {
			who, err := s.completedBy(ctx, id, act)
			if err != nil {
				t.Fatal(err)
			}
			c, err := containerOf(ctx, s.eval, who)
			if err != nil {
				t.Fatalf("%s of %s: %v", act, id, err)
			}
			t.Logf("%s of %s ran on %s (project %s)", act, id, c.Name, s.eval.name)
		}
	}
	if _, err := s.central.compose(ctx, "start", "worker-execute", "worker-sanity"); err != nil {
		t.Fatal(err)
	}
}

// completedBy returns the identity of the worker that completed the
// activity of a type in a workflow's history.
func (s *stackT) completedBy(ctx context.Context, id, activityType string) (string, error) {
	it := s.tc.GetWorkflowHistory(ctx, contract.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	started := map[int64]string{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "", err
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			started[ev.GetEventId()] = a.GetIdentity()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == activityType {
			return started[a.GetStartedEventId()], nil
		}
	}
	return "", fmt.Errorf("%s: no completed %s", id, activityType)
}

func describeNamespace(name string) *workflowservice.DescribeNamespaceRequest {
	return &workflowservice.DescribeNamespaceRequest{Namespace: name}
}
