package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/store"
)

// receiver is a webhook endpoint that records deliveries and answers
// with the next of its status codes (the last one repeats).
type receiver struct {
	mu     sync.Mutex
	codes  []int
	got    []delivery
	server *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	rc := &receiver{codes: codes}
	rc.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body})
		code := rc.codes[min(len(rc.got), len(rc.codes))-1]
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.server.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// signature computes the expected header independently of the code under test.
func signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// gradedSubmission stores a finished submission of assignment wc.
func gradedSubmission(t *testing.T, e *testEnv) string {
	t.Helper()
	id := "wh-" + randHex(6)
	if r := e.post(portalToken, nil, submissionParts("wc", "alice", id)...); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	if err := e.store.Record(context.Background(), id, store.Submission{}, store.Final{
		Status: store.StatusGraded, Outcome: store.OutcomeWrongAnswer, Score: 40, MaxScore: 100, Feedback: "2 of 5 lines",
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestWebhookActivity(t *testing.T) {
	const secret = "s3cret"
	e := newEnv(t, nil, nil)
	ok := newReceiver(t, http.StatusNoContent)
	e.seedAssignment("wc", ok.server.URL+"/hook")
	id := gradedSubmission(t, e)
	acts := &activities.Activities{Store: e.store, HTTP: activities.NewWebhookClient(secret, 5*time.Second)}

	run := func(acts *activities.Activities, req activities.WebhookRequest) error {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		env.RegisterActivity(acts)
		_, err := env.ExecuteActivity(acts.Webhook, req)
		return err
	}
	if err := run(acts, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"}); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	got := ok.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	d := got[0]
	sig := d.header.Get(activities.HeaderSignature)
	if sig != signature(secret, d.body) {
		t.Errorf("signature %q, want %q", sig, signature(secret, d.body))
	}
	if !activities.VerifySignature([]byte(secret), d.body, sig) || activities.VerifySignature([]byte("wrong"), d.body, sig) {
		t.Errorf("VerifySignature disagrees")
	}
	if d.header.Get(activities.HeaderEvent) != activities.EventCompleted || d.header.Get(activities.HeaderDelivery) != id ||
		d.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", d.header)
	}
	var payload activities.WebhookPayload
	if err := json.Unmarshal(d.body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Event != activities.EventCompleted || payload.Submission == nil || payload.Submission.ID != id ||
		payload.Submission.Score != 40 || payload.Submission.Stage != store.StageDone {
		t.Errorf("payload %s", d.body)
	}

	t.Run("refused for good", func(t *testing.T) {
		rc := newReceiver(t, http.StatusGone)
		e.seedAssignment("wc", rc.server.URL)
		err := run(acts, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != activities.WebhookRejected || !appErr.NonRetryable() {
			t.Errorf("error %v, want a non-retryable %s", err, activities.WebhookRejected)
		}
	})
	t.Run("receiver down is retryable", func(t *testing.T) {
		for _, code := range []int{http.StatusInternalServerError, http.StatusTooManyRequests} {
			rc := newReceiver(t, code)
			e.seedAssignment("wc", rc.server.URL)
			err := run(acts, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"})
			var appErr *temporal.ApplicationError
			if err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
				t.Errorf("%d: error %v, want a retryable one", code, err)
			}
		}
	})
	t.Run("no webhook", func(t *testing.T) {
		e.seedAssignment("wc", "")
		if err := run(&activities.Activities{Store: e.store}, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"}); err != nil {
			t.Errorf("no webhook: %v", err)
		}
	})
	t.Run("no client", func(t *testing.T) {
		e.seedAssignment("wc", ok.server.URL)
		err := run(&activities.Activities{Store: e.store}, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() {
			t.Errorf("error %v, want a non-retryable one", err)
		}
	})
}

// webhookWorkflow runs the webhook step as the submission workflow is to:
// after recording, retried with backoff, never failing the grading.
func webhookWorkflow(ctx workflow.Context, req activities.WebhookRequest) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.WebhookRejected, activities.ConfigFailure},
		},
	})
	var a *activities.Activities
	return workflow.ExecuteActivity(ctx, a.Webhook, req).Get(ctx, nil)
}

func TestWebhookRetries(t *testing.T) {
	const secret = "s3cret"
	e := newEnv(t, nil, nil)
	rc := newReceiver(t, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusOK)
	e.seedAssignment("wc", rc.server.URL)
	id := gradedSubmission(t, e)

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{Store: e.store, HTTP: activities.NewWebhookClient(secret, 5*time.Second)})
	env.RegisterWorkflow(webhookWorkflow)
	env.ExecuteWorkflow(webhookWorkflow, activities.WebhookRequest{SubmissionID: id, Assignment: "wc"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3 (two failures, then success)", len(got))
	}
	for i, d := range got {
		if d.header.Get(activities.HeaderSignature) != signature(secret, d.body) || d.header.Get(activities.HeaderDelivery) != id {
			t.Errorf("delivery %d: bad signature or delivery id: %v", i, d.header)
		}
	}
}

func TestWebhookTestEndpoint(t *testing.T) {
	e := newEnv(t, nil, nil) // secret "test-secret"
	rc := newReceiver(t, http.StatusOK)
	e.seedAssignment("wc", rc.server.URL)
	r := e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken})
	if r.status != http.StatusOK || r.json(t)["delivered"] != true {
		t.Fatalf("ping: %d %s", r.status, r.body)
	}
	d := rc.deliveries()[0]
	if d.header.Get(activities.HeaderSignature) != signature("test-secret", d.body) || d.header.Get(activities.HeaderEvent) != activities.EventPing {
		t.Errorf("ping headers %v body %s", d.header, d.body)
	}

	down := newReceiver(t, http.StatusInternalServerError)
	e.seedAssignment("wc", down.server.URL)
	wantError(t, e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken}),
		http.StatusBadGateway, codeWebhookFailed, "")
	e.seedAssignment("wc", "")
	wantError(t, e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken}),
		http.StatusConflict, codeConflict, "")
}
