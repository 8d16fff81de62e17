package activities

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/webhook"
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
		w.WriteHeader(rc.codes[min(len(rc.got), len(rc.codes))-1])
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

// gradedStore holds one finished submission s1 of assignment wc, whose
// webhook is url.
func gradedStore(url string) *fakeStore {
	st := newFakeStore()
	asg := wordcount()
	asg.WebhookURL = url
	st.assignments["wc"] = asg
	st.subs["s1"] = store.Submission{ID: "s1", Assignment: "wc", Student: "ada", Stage: contract.StageDone,
		Status: contract.StatusGraded, Outcome: contract.OutcomeWrongAnswer, Score: 40, MaxScore: 100}
	return st
}

func TestWebhook(t *testing.T) {
	const secret = "s3cret"
	ok := newReceiver(t, http.StatusNoContent)
	st := gradedStore(ok.server.URL + "/hook")
	a := &Activities{Files: st, Submissions: st, HTTP: webhook.NewClient(secret, 5*time.Second, true)}
	req := contract.WebhookRequest{SubmissionID: "s1", Assignment: "wc"}
	if err := runActivity(t, a, a.Webhook, req, nil); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	got := ok.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	d := got[0]
	sig := d.header.Get(webhook.HeaderSignature)
	if sig != signature(secret, d.body) {
		t.Errorf("signature %q, want %q", sig, signature(secret, d.body))
	}
	if !webhook.Verify([]byte(secret), d.body, sig) || webhook.Verify([]byte("wrong"), d.body, sig) {
		t.Errorf("Verify disagrees")
	}
	if d.header.Get(webhook.HeaderEvent) != webhook.EventCompleted || d.header.Get(webhook.HeaderDelivery) != "s1" ||
		d.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", d.header)
	}
	var payload webhook.Payload
	if err := json.Unmarshal(d.body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Event != webhook.EventCompleted || payload.Submission == nil || payload.Submission.ID != "s1" ||
		payload.Submission.Score != 40 || payload.Submission.Stage != contract.StageDone {
		t.Errorf("payload %s", d.body)
	}

	tests := []struct {
		name      string
		code      int  // the receiver's answer; 0: no webhook URL
		noClient  bool // the worker has no webhook client
		wantErr   bool
		wantFinal bool // non-retryable
	}{
		{name: "refused for good", code: http.StatusGone, wantErr: true, wantFinal: true},
		{name: "receiver failing is retried", code: http.StatusInternalServerError, wantErr: true},
		{name: "receiver throttling is retried", code: http.StatusTooManyRequests, wantErr: true},
		{name: "no webhook", code: 0},
		{name: "no client is staff's to fix", code: http.StatusOK, noClient: true, wantErr: true, wantFinal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := ""
			if tt.code != 0 {
				url = newReceiver(t, tt.code).server.URL
			}
			st := gradedStore(url)
			a := &Activities{Files: st, Submissions: st, HTTP: webhook.NewClient(secret, 5*time.Second, true)}
			if tt.noClient {
				a.HTTP = nil
			}
			err := runActivity(t, a, a.Webhook, req, nil)
			var appErr *temporal.ApplicationError
			final := errors.As(err, &appErr) && appErr.NonRetryable()
			if (err != nil) != tt.wantErr || final != tt.wantFinal {
				t.Errorf("error %v (final %v), want error %v final %v", err, final, tt.wantErr, tt.wantFinal)
			}
		})
	}
}

// webhookWorkflow runs the webhook step with the submission workflow's
// retry policy for it.
func webhookWorkflow(ctx workflow.Context, req contract.WebhookRequest) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			NonRetryableErrorTypes: []string{contract.WebhookRejected, contract.ConfigFailure},
		},
	})
	return workflow.ExecuteActivity(ctx, contract.ActivityWebhook, req).Get(ctx, nil)
}

func TestWebhookRetries(t *testing.T) {
	const secret = "s3cret"
	rc := newReceiver(t, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusOK)
	st := gradedStore(rc.server.URL)
	a := &Activities{Files: st, Submissions: st, HTTP: webhook.NewClient(secret, 5*time.Second, true)}

	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(a.Webhook, activity.RegisterOptions{Name: contract.ActivityWebhook})
	env.RegisterWorkflow(webhookWorkflow)
	env.ExecuteWorkflow(webhookWorkflow, contract.WebhookRequest{SubmissionID: "s1", Assignment: "wc"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3 (two failures, then success)", len(got))
	}
	for i, d := range got {
		if d.header.Get(webhook.HeaderSignature) != signature(secret, d.body) || d.header.Get(webhook.HeaderDelivery) != "s1" {
			t.Errorf("delivery %d: bad signature or delivery id: %v", i, d.header)
		}
	}
}

// TestRecord records a grade and reports whether a webhook follows.
func TestRecord(t *testing.T) {
	for _, url := range []string{"", "https://hooks.example/x"} {
		st := gradedStore(url)
		a := &Activities{Files: st, Submissions: st}
		g := contract.Grade{Status: contract.StatusGraded, Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}
		var rec contract.Recorded
		err := runActivity(t, a, a.Record, contract.RecordRequest{
			Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada"}, Final: g,
		}, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if st.recorded["s1"].Outcome != contract.OutcomePassed || rec.Webhook != (url != "") {
			t.Errorf("webhook %q: recorded %+v, %+v", url, st.recorded["s1"], rec)
		}
	}
	st := newFakeStore()
	st.fail = errors.New("mongodb: connection refused")
	a := &Activities{Files: st, Submissions: st}
	err := runActivity(t, a, a.Record, contract.RecordRequest{Request: contract.Request{SubmissionID: "s1"}}, nil)
	if failureOf(err) != "retry" {
		t.Errorf("store down: %v, want a retryable error", err)
	}
}
