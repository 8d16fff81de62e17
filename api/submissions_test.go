//go:build stack

package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

func TestCreateSubmission(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	id := "s-" + randHex(6)
	for _, token := range []string{portalToken, staffToken} {
		id := id + "-" + token[:5]
		r := e.post(token, nil, submissionParts("wc", "alice", id)...)
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		want := map[string]any{"id": id, "workflow_id": contract.WorkflowID(id), "status_url": "/v1/submissions/" + id, "created": true}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		if loc := r.header.Get("Location"); loc != "/v1/submissions/"+id {
			t.Errorf("Location %q", loc)
		}
		ctx := context.Background()
		sub, err := e.store.Submission(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Student != "alice" || sub.Assignment != "wc" || sub.Stage != contract.StageSubmitted {
			t.Errorf("document %+v", sub)
		}
		files, err := submissionFiles(ctx, e.store, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(files["lib/reducer.py"]) != "print('reduce')\n" || string(files["mapper.py"]) != "print('map')\n" || len(files) != 2 {
			t.Errorf("stored files %q", files)
		}
		desc, err := stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
		if err != nil {
			t.Fatalf("workflow: %v", err)
		}
		if got := desc.GetWorkflowExecutionInfo().GetType().GetName(); got != contract.WorkflowName {
			t.Errorf("workflow type %q", got)
		}
	}
}

func TestCreateSubmissionZip(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	id := "z-" + randHex(6)
	archive := makeZip(t,
		zipEntry{name: "src/", mode: fs.ModeDir | 0o755},
		zipEntry{name: "src/Main.java", data: []byte("class Main {}")},
		zipEntry{name: "mapper.py", data: []byte("pass")},
	)
	r := e.post(portalToken, nil, field("assignment", "wc"), field("student", "bob"), field("id", id),
		part{name: "zip", filename: "sub.zip", data: archive, file: true})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	files, err := submissionFiles(context.Background(), e.store, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || string(files["src/Main.java"]) != "class Main {}" || string(files["mapper.py"]) != "pass" {
		t.Errorf("stored files %q", files)
	}
}

// TestCreateSubmissionRejects checks every kind of bad input: a clear
// JSON error, and nothing stored anywhere.
func TestCreateSubmissionRejects(t *testing.T) {
	cfg := testConfig()
	cfg.MaxUpload = 256 << 10
	e := newEnv(t, &cfg, nil)
	e.seedAssignment("wc", "")
	manyEntries := make([]zipEntry, maxFiles+1)
	for i := range manyEntries {
		manyEntries[i] = zipEntry{name: fmt.Sprintf("f%04d.txt", i), data: []byte("x")}
	}
	manyFiles := []part{field("assignment", "wc"), field("student", "s")}
	for i := range maxFiles + 1 {
		manyFiles = append(manyFiles, file("files", fmt.Sprintf("f%04d.txt", i), "x"))
	}
	zipPart := func(entries ...zipEntry) part {
		return part{name: "zip", filename: "s.zip", data: makeZip(t, entries...), file: true}
	}
	base := []part{field("assignment", "wc"), field("student", "s")}
	with := func(ps ...part) []part { return append(append([]part{}, base...), ps...) }
	tests := []struct {
		name   string
		parts  []part
		status int
		code   string
		field  string
	}{
		{"missing student", []part{field("assignment", "wc"), file("files", "a.py", "x")}, 400, codeMissingField, "student"},
		{"missing assignment", []part{field("student", "s"), file("files", "a.py", "x")}, 400, codeMissingField, "assignment"},
		{"missing files", base, 400, codeMissingField, "files"},
		{"bad student", []part{field("assignment", "wc"), field("student", "a b"), file("files", "a.py", "x")}, 400, codeInvalidField, "student"},
		{"bad id", with(field("id", "../x"), file("files", "a.py", "x")), 400, codeInvalidField, "id"},
		{"unknown part", with(file("files", "a.py", "x"), field("color", "red")), 400, codeInvalidField, "color"},
		{"field twice", with(file("files", "a.py", "x"), field("student", "t")), 400, codeInvalidField, "student"},
		{"unknown assignment", []part{field("assignment", "nope"), field("student", "s"), file("files", "a.py", "x")}, 404, codeUnknownAssign, "assignment"},
		{"dot-dot file name", with(file("files", "../evil.py", "x")), 400, codeUnsafePath, "files"},
		{"absolute file name", with(file("files", "/etc/passwd", "x")), 400, codeUnsafePath, "files"},
		{"inner dot-dot file name", with(file("files", "a/../../b.py", "x")), 400, codeUnsafePath, "files"},
		{"backslash file name", with(file("files", `..\evil.py`, "x")), 400, codeUnsafePath, "files"},
		{"same file twice", with(file("files", "a.py", "x"), file("files", "a.py", "y")), 400, codeInvalidField, "files"},
		{"files and zip", with(file("files", "a.py", "x"), zipPart(zipEntry{name: "b.py", data: []byte("y")})), 400, codeInvalidField, "zip"},
		{"two zips", with(zipPart(zipEntry{name: "b.py"}), zipPart(zipEntry{name: "c.py"})), 400, codeInvalidField, "zip"},
		{"zip slip", with(zipPart(zipEntry{name: "../../evil.sh", data: []byte("x")})), 400, codeUnsafePath, "zip"},
		{"zip absolute", with(zipPart(zipEntry{name: "/etc/cron.d/x", data: []byte("x")})), 400, codeUnsafePath, "zip"},
		{"zip symlink", with(zipPart(zipEntry{name: "link", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777})), 400, codeUnsafePath, "zip"},
		{"zip too many entries", with(zipPart(manyEntries...)), 400, codeInvalidField, "zip"},
		{"zip bomb", with(zipPart(zipEntry{name: "bomb", data: make([]byte, 4<<20)})), 413, codeTooLarge, ""},
		{"zip lying about its size", with(part{name: "zip", filename: "s.zip", data: lyingZip(t, 4<<20), file: true}), 400, codeInvalidField, "zip"},
		{"not a zip", with(part{name: "zip", filename: "s.zip", data: []byte("PK nope"), file: true}), 400, codeInvalidField, "zip"},
		{"empty zip", with(zipPart()), 400, codeInvalidField, "zip"},
		{"too many files", manyFiles, 400, codeInvalidField, ""},
		{"over the upload cap", with(file("files", "big.bin", strings.Repeat("x", 400<<10))), 413, codeTooLarge, ""},
		{"files over the cap together", with(file("files", "a.bin", strings.Repeat("x", 150<<10)), file("files", "b.bin", strings.Repeat("x", 150<<10))), 413, codeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "bad-" + randHex(6)
			parts := append(append([]part{}, tt.parts...), field("id", id))
			if tt.name == "bad id" || tt.name == "too many files" {
				parts = tt.parts
			}
			r := e.post(portalToken, nil, parts...)
			wantError(t, r, tt.status, tt.code, tt.field)
			e.wantNoState(id)
		})
	}

	t.Run("not multipart", func(t *testing.T) {
		r := e.do(request{method: http.MethodPost, path: "/v1/submissions", token: portalToken,
			body: strings.NewReader(`{"student":"s"}`), contentType: "application/json"})
		wantError(t, r, 400, codeMalformed, "")
	})
	t.Run("truncated multipart", func(t *testing.T) {
		body, ct := multipartBody(t, submissionParts("wc", "s", "trunc-"+randHex(4))...)
		r := e.do(request{method: http.MethodPost, path: "/v1/submissions", token: portalToken,
			body: bytes.NewReader(body.Bytes()[:body.Len()-20]), contentType: ct})
		wantError(t, r, 400, codeMalformed, "")
	})
	n, err := e.store.DB().Collection(store.SubmissionsCollection).CountDocuments(context.Background(), map[string]any{})
	if err != nil || n != 0 {
		t.Errorf("%d submissions stored by rejected requests (err %v)", n, err)
	}
}

// TestIdempotency checks that a submission ID is graded once, whichever
// way it is named.
func TestIdempotency(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	ctx := context.Background()

	t.Run("same id twice", func(t *testing.T) {
		id := "dup-" + randHex(6)
		first := e.post(portalToken, nil, submissionParts("wc", "alice", id)...)
		if first.status != http.StatusAccepted {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		desc1, err := stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
		if err != nil {
			t.Fatal(err)
		}
		second := e.post(portalToken, nil, submissionParts("wc", "alice", id)...)
		if second.status != http.StatusOK {
			t.Fatalf("second: %d %s", second.status, second.body)
		}
		m := second.json(t)
		if m["created"] != false || m["id"] != id || m["stage"] != "submitted" || m["student"] != "alice" {
			t.Errorf("second answer %s", second.body)
		}
		desc2, err := stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
		if err != nil {
			t.Fatal(err)
		}
		if r1, r2 := desc1.GetWorkflowExecutionInfo().GetExecution().GetRunId(), desc2.GetWorkflowExecutionInfo().GetExecution().GetRunId(); r1 != r2 {
			t.Errorf("a second run was started: %s then %s", r1, r2)
		}
		if n := countRuns(t, contract.WorkflowID(id)); n != 1 {
			t.Errorf("%d runs of %s, want 1", n, id)
		}
	})

	t.Run("same id after completion", func(t *testing.T) {
		id := "done-" + randHex(6)
		if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
			t.Fatalf("first: %d %s", r.status, r.body)
		}
		if err := stack.temporal.TerminateWorkflow(ctx, contract.WorkflowID(id), "", "test"); err != nil {
			t.Fatal(err)
		}
		r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...)
		if r.status != http.StatusOK || r.json(t)["created"] != false {
			t.Fatalf("resubmit of a closed workflow: %d %s", r.status, r.body)
		}
		if n := countRuns(t, contract.WorkflowID(id)); n != 1 {
			t.Errorf("%d runs of %s, want 1", n, id)
		}
	})

	t.Run("stored but never started", func(t *testing.T) {
		// An API replica died between storing a submission and starting
		// its workflow: the client's retry starts it, once.
		for _, limited := range []bool{false, true} {
			env := e
			if limited {
				cfg := testConfig()
				cfg.RatePerMinute, cfg.RateBurst = 60, 5
				env = newEnv(t, &cfg, nil)
				env.seedAssignment("wc", "")
			}
			id := "crash-" + randHex(6)
			if _, err := env.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wc", Student: "alice", WorkflowID: contract.WorkflowID(id)}); err != nil {
				t.Fatal(err)
			}
			if err := env.store.FilesStored(ctx, id); err != nil {
				t.Fatal(err)
			}
			r := env.post(portalToken, nil, submissionParts("wc", "alice", id)...)
			if r.status != http.StatusOK || r.json(t)["created"] != false {
				t.Fatalf("limited=%v: retry: %d %s", limited, r.status, r.body)
			}
			if _, err := stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), ""); err != nil {
				t.Errorf("limited=%v: workflow not started by the retry: %v", limited, err)
			}
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		key := map[string]string{HeaderIdempotencyKey: "retry-" + randHex(4)}
		first := e.post(portalToken, key, submissionParts("wc", "carol", "")...)
		if first.status != http.StatusAccepted {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		id := first.json(t)["id"].(string)
		if !contract.ValidID(id) || id != idempotentID("carol", key[HeaderIdempotencyKey]) {
			t.Errorf("derived id %q", id)
		}
		second := e.post(portalToken, key, submissionParts("wc", "carol", "")...)
		if second.status != http.StatusOK || second.json(t)["id"] != id || second.json(t)["created"] != false {
			t.Errorf("retry with the key: %d %s", second.status, second.body)
		}
		other := e.post(portalToken, key, submissionParts("wc", "dave", "")...)
		if other.status != http.StatusAccepted || other.json(t)["id"] == id {
			t.Errorf("another student's same key: %d %s", other.status, other.body)
		}
	})

	t.Run("same id another student", func(t *testing.T) {
		id := "own-" + randHex(6)
		if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
			t.Fatalf("first: %d %s", r.status, r.body)
		}
		r := e.post(portalToken, nil, submissionParts("wc", "mallory", id)...)
		wantError(t, r, http.StatusConflict, codeConflict, "id")
	})

	t.Run("concurrent same id", func(t *testing.T) {
		id := "race-" + randHex(6)
		codes := make(chan int, 8)
		for range 8 {
			go func() {
				body, ct := multipartBody(t, submissionParts("wc", "erin", id)...)
				req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/v1/submissions", body)
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Authorization", "Bearer "+portalToken)
				resp, err := e.http.Client().Do(req)
				if err != nil {
					codes <- 0
					return
				}
				_ = resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		// One request creates it; the others answer it, or, while its files
		// are still being stored, 409 in_progress with Retry-After.
		got := map[int]int{}
		for range 8 {
			got[<-codes]++
		}
		if got[http.StatusAccepted] != 1 || got[http.StatusOK]+got[http.StatusConflict] != 7 {
			t.Errorf("answers %v, want one 202 and seven 200 or 409", got)
		}
		if n := countRuns(t, contract.WorkflowID(id)); n != 1 {
			t.Errorf("%d runs, want 1", n)
		}
	})
}

// countRuns counts the runs of a workflow ID, waiting out visibility lag.
func countRuns(t *testing.T, workflowID string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := stack.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId=%q", workflowID)})
		if err != nil {
			t.Fatal(err)
		}
		if n = resp.GetCount(); n > 0 {
			// Give a second run, if any, the same time to show up.
			time.Sleep(300 * time.Millisecond)
			resp, err = stack.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId=%q", workflowID)})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetCount()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

func TestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RatePerMinute, cfg.RateBurst = 6, 2 // a token every 10 s
	e := newEnv(t, &cfg, nil)
	var skew atomic.Int64 // the server's clock runs this far ahead
	e.srv.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e.seedAssignment("wc", "")
	ids := []string{"rl-" + randHex(4), "rl-" + randHex(4), "rl-" + randHex(4)}
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests} {
		r := e.post(portalToken, nil, submissionParts("wc", "greedy", ids[i])...)
		if r.status != want {
			t.Fatalf("submission %d: %d, want %d: %s", i, r.status, want, r.body)
		}
		if want == http.StatusTooManyRequests {
			wantError(t, r, want, codeRateLimited, "")
			secs, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || secs < 1 || secs > 10 {
				t.Errorf("Retry-After %q, want 1..10 s", r.header.Get("Retry-After"))
			}
		}
	}
	e.wantNoState(ids[2])
	// A retry of an accepted submission is answered, not refused.
	if r := e.post(portalToken, nil, submissionParts("wc", "greedy", ids[0])...); r.status != http.StatusOK {
		t.Errorf("retry of an accepted submission: %d %s", r.status, r.body)
	}
	// Other students have buckets of their own.
	if r := e.post(portalToken, nil, submissionParts("wc", "patient", "rl-"+randHex(4))...); r.status != http.StatusAccepted {
		t.Errorf("another student: %d %s", r.status, r.body)
	}
	// The bucket refills: with the clock 10 s on, one more is accepted.
	skew.Store(int64(10 * time.Second))
	if r := e.post(portalToken, nil, submissionParts("wc", "greedy", "rl-"+randHex(4))...); r.status != http.StatusAccepted {
		t.Errorf("after refill: %d %s", r.status, r.body)
	}
}

func TestGetSubmission(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	id := "get-" + randHex(6)
	if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	r := e.get(portalToken, "/v1/submissions/"+id)
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["id"] != id || m["stage"] != "submitted" || m["status"] != "pending" || m["position"] != 0.0 {
		t.Errorf("answer %s", r.body)
	}
	if _, ok := m["eta_seconds"]; ok {
		t.Errorf("eta without any execution slot: %s", r.body)
	}
	times, _ := m["times"].(map[string]any)
	if times["submitted"] == nil {
		t.Errorf("no submitted time: %s", r.body)
	}

	wantError(t, e.get(portalToken, "/v1/submissions/nope-"+randHex(3)), http.StatusNotFound, codeNotFound, "")

	// Done: no position.
	if err := e.store.Record(context.Background(), id, store.Submission{}, contract.Grade{
		Status: contract.StatusGraded, Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100,
		Tests: []contract.TestResult{{Name: "t1", Passed: true, Score: 100, MaxScore: 100}},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	m = e.get(staffToken, "/v1/submissions/"+id).json(t)
	if _, ok := m["position"]; ok || m["outcome"] != "passed" || m["score"] != 100.0 || m["stage"] != "done" {
		t.Errorf("done answer %v", m)
	}
}

func TestListSubmissions(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	e.seedAssignment("pi", "")
	var want []string // alice's, newest first
	for i := range 7 {
		student, asg := "alice", "wc"
		if i%2 == 1 {
			student = "bob"
		}
		if i == 6 {
			asg = "pi"
		}
		id := fmt.Sprintf("list-%d-%s", i, randHex(3))
		if r := e.post(portalToken, nil, submissionParts(asg, student, id)...); r.status != http.StatusAccepted {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
		if student == "alice" {
			want = append([]string{id}, want...)
		}
	}
	page := func(query string) ([]string, string) {
		t.Helper()
		r := e.get(portalToken, "/v1/submissions"+query)
		if r.status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		m := r.json(t)
		var ids []string
		for _, s := range m["submissions"].([]any) {
			ids = append(ids, s.(map[string]any)["id"].(string))
		}
		next, _ := m["next_cursor"].(string)
		return ids, next
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		ids, next := page("?student=alice&limit=3&cursor=" + cursor)
		got = append(got, ids...)
		if next == "" {
			if pages != 1 {
				t.Errorf("%d pages, want 2", pages+1)
			}
			break
		}
		cursor = next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged list\n got %v\nwant %v", got, want)
	}
	if ids, _ := page("?student=bob"); len(ids) != 3 {
		t.Errorf("bob's: %v", ids)
	}
	if ids, _ := page("?assignment=pi&student=alice"); len(ids) != 1 || ids[0] != want[0] {
		t.Errorf("alice's pi: %v", ids)
	}
	if ids, _ := page("?student=nobody"); len(ids) != 0 {
		t.Errorf("nobody's: %v", ids)
	}
	// Every listing is filtered: by student, assignment or both.
	wantError(t, e.get(portalToken, "/v1/submissions?limit=3"), 400, codeMissingField, "student")
	if ids, _ := page("?assignment=pi"); len(ids) != 1 || ids[0] != want[0] {
		t.Errorf("pi's: %v", ids)
	}
	for _, q := range []string{"?student=a&limit=0", "?student=a&limit=1000", "?student=a&limit=x"} {
		wantError(t, e.get(portalToken, "/v1/submissions"+q), 400, codeInvalidField, "limit")
	}
	wantError(t, e.get(portalToken, "/v1/submissions?student=a&cursor=%21%21"), 400, codeInvalidField, "cursor")
	// Staff list the quarantined submissions, on their own.
	wantError(t, e.get(portalToken, "/v1/submissions?status=quarantined"), 403, codeForbidden, "")
	wantError(t, e.get(staffToken, "/v1/submissions?status=graded"), 400, codeInvalidField, "status")
	wantError(t, e.get(staffToken, "/v1/submissions?status=quarantined&student=bob"), 400, codeInvalidField, "status")
	r := e.get(staffToken, "/v1/submissions?status=quarantined")
	if r.status != 200 || !strings.Contains(string(r.body), `"submissions":[]`) {
		t.Errorf("quarantined listing: %d %s, want an empty page", r.status, r.body)
	}
}

func TestCancelSubmission(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	ctx := context.Background()
	cancel := func(token, id string) response {
		return e.do(request{method: http.MethodPost, path: "/v1/submissions/" + id + "/cancel", token: token})
	}

	for _, token := range []string{portalToken, staffToken} {
		id := "cx-" + randHex(6)
		if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
		r := cancel(token, id)
		if r.status != http.StatusAccepted || r.json(t)["status"] != "cancel_requested" {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		if !cancelRequested(t, contract.WorkflowID(id)) {
			t.Errorf("no cancel request in the history of %s", id)
		}
	}

	t.Run("done already", func(t *testing.T) {
		id := "cxd-" + randHex(6)
		if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
		if err := e.store.Record(ctx, id, store.Submission{}, contract.Grade{Status: contract.StatusGraded, Outcome: contract.OutcomeWrongAnswer}, time.Now()); err != nil {
			t.Fatal(err)
		}
		wantError(t, cancel(portalToken, id), http.StatusConflict, codeAlreadyDone, "")
	})
	t.Run("workflow closed", func(t *testing.T) {
		id := "cxc-" + randHex(6)
		if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
		if err := stack.temporal.TerminateWorkflow(ctx, contract.WorkflowID(id), "", "test"); err != nil {
			t.Fatal(err)
		}
		wantError(t, cancel(portalToken, id), http.StatusConflict, codeAlreadyDone, "")
	})
	t.Run("no workflow", func(t *testing.T) {
		id := "cxn-" + randHex(6)
		if _, err := e.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wc", Student: "a", WorkflowID: contract.WorkflowID(id)}); err != nil {
			t.Fatal(err)
		}
		wantError(t, cancel(portalToken, id), http.StatusNotFound, codeNotFound, "")
	})
	t.Run("unknown", func(t *testing.T) {
		wantError(t, cancel(portalToken, "nope-"+randHex(3)), http.StatusNotFound, codeNotFound, "")
	})
}

// cancelRequested reports whether a workflow's history has a cancel request.
func cancelRequested(t *testing.T, workflowID string) bool {
	t.Helper()
	it := stack.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED {
			return true
		}
	}
	return false
}

func TestRegrade(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedAssignment("wc", "")
	ctx := context.Background()
	old := "rg-" + randHex(6)
	if r := e.post(portalToken, nil, submissionParts("wc", "alice", old)...); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	regrade := func(token, id string) response {
		return e.do(request{method: http.MethodPost, path: "/v1/submissions/" + id + "/regrade", token: token})
	}
	oldFiles, err := submissionFiles(ctx, e.store, old)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		r := regrade(staffToken, old)
		if r.status != http.StatusAccepted {
			t.Fatalf("regrade %d: %d %s", n, r.status, r.body)
		}
		id := fmt.Sprintf("%s-r%d", old, n)
		m := r.json(t)
		if m["id"] != id || m["regrade_of"] != old || m["created"] != true || m["workflow_id"] != contract.WorkflowID(id) {
			t.Errorf("regrade %d answer %s", n, r.body)
		}
		sub, err := e.store.Submission(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sub.RegradeOf != old || sub.Student != "alice" || sub.Assignment != "wc" {
			t.Errorf("regrade document %+v", sub)
		}
		files, err := submissionFiles(ctx, e.store, id)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(files) != fmt.Sprint(oldFiles) {
			t.Errorf("regrade files %q, want %q", files, oldFiles)
		}
		if _, err := stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), ""); err != nil {
			t.Errorf("regrade workflow: %v", err)
		}
		if g := e.get(portalToken, "/v1/submissions/"+id).json(t); g["regrade_of"] != old {
			t.Errorf("GET regrade: %v", g)
		}
	}
	wantError(t, regrade(portalToken, old), http.StatusForbidden, codeForbidden, "")
	wantError(t, regrade(staffToken, "nope-"+randHex(3)), http.StatusNotFound, codeNotFound, "")
}
