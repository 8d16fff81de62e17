package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
)

// HeaderIdempotencyKey names a submission when the form has no id: the
// same key from the same student always means the same submission.
const HeaderIdempotencyKey = "Idempotency-Key"

// accepted answers a submission that was accepted and started.
type accepted struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
	Created    bool   `json:"created"`
	RegradeOf  string `json:"regrade_of,omitempty"`
}

// submissionView is a submission as the API shows it: the read-model
// document, with its place in the queue while it waits for one.
type submissionView struct {
	store.Submission
	// Position counts the submissions ahead of it waiting for an execution
	// slot; present while it is submitted, in sanity or queued.
	Position *int64 `json:"position,omitempty"`
	// ETASeconds estimates the seconds until it is graded; present with
	// Position while execution slots are online.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// StartETASeconds estimates the seconds until it starts running.
	StartETASeconds *float64 `json:"start_eta_seconds,omitempty"`
	StatusURL       string   `json:"status_url"`
	// Created is set on the answer to a POST that found the ID taken.
	Created *bool `json:"created,omitempty"`
	// Runs are the execute step's attempts, with the worker and host of
	// each (the execution tracker); staff only.
	Runs []contract.Run `json:"runs,omitempty"`
}

func statusURL(id string) string { return "/v1/submissions/" + id }

// createSubmission accepts a multipart upload and starts its grading.
func (s *server) createSubmission(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := readForm(w, r, formSpec{
		fields:   []string{"assignment", "student", "id"},
		files:    []string{"files"},
		blobs:    []string{"zip"},
		maxBytes: s.cfg.MaxUpload,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sub, clientID, err := s.newSubmission(r, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.intake.Check(ctx, &sub); err != nil {
		s.fail(w, r, err)
		return
	}
	// With a rate limit, a known ID is answered before it: a client
	// retrying a lost answer is never refused. (A fresh ID cannot be known,
	// and without a limit Submit finds duplicates itself.)
	if s.cfg.RatePerMinute > 0 && clientID {
		got, found, err := s.intake.Resume(ctx, sub)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if found {
			s.answerDuplicate(w, r, got)
			return
		}
	}
	if err := s.limit(ctx, w, sub.Student); err != nil {
		s.fail(w, r, err)
		return
	}
	got, err := s.intake.Submit(ctx, sub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !got.Created { // known already; Submit made sure its workflow runs
		s.answerDuplicate(w, r, got)
		return
	}
	s.metrics.accepted.Inc()
	w.Header().Set("Location", statusURL(got.ID))
	writeJSON(w, http.StatusAccepted, accepted{ID: got.ID, WorkflowID: got.WorkflowID, StatusURL: statusURL(got.ID), Created: true})
}

// newSubmission reads a submission form and names the submission: by its
// id field, by its Idempotency-Key, or (ID left empty) by the intake;
// clientID reports that the client chose the name.
func (s *server) newSubmission(r *http.Request, f *form) (sub intake.Submission, clientID bool, err error) {
	sub = intake.Submission{Assignment: f.fields["assignment"], Student: f.fields["student"], ID: f.fields["id"]}
	_, hasID := f.fields["id"]
	key := r.Header.Get(HeaderIdempotencyKey)
	switch {
	case hasID && sub.ID == "":
		return sub, false, invalidField("id", "must not be empty")
	case hasID:
	case key != "":
		if len(key) > 255 {
			return sub, false, errorf(http.StatusBadRequest, codeInvalidField, "%s is longer than 255 bytes", HeaderIdempotencyKey)
		}
		if sub.Student == "" {
			return sub, false, missingField("student")
		}
		sub.ID = idempotentID(sub.Student, key)
	}
	files, zipped := f.files["files"], f.files["zip"]
	switch {
	case len(files) > 0 && len(zipped) > 0:
		return sub, false, invalidField("zip", "send either files parts or one zip part, not both")
	case len(zipped) == 1:
		if files, err = unzip(zipped["zip"], s.cfg.MaxUpload); err != nil {
			return sub, false, err
		}
		if len(files) == 0 {
			return sub, false, invalidField("zip", "the archive holds no files")
		}
	}
	sub.Files = files
	return sub, hasID || key != "", nil
}

// idempotentID derives a submission ID from an idempotency key: the same
// key from the same student names the same submission, and keys of
// different students never collide.
func idempotentID(student, key string) string {
	sum := sha256.Sum256([]byte(student + "\x00" + key))
	return "k" + hex.EncodeToString(sum[:16])
}

// answerDuplicate answers a POST whose ID exists with the existing
// submission (the intake made sure its workflow runs).
func (s *server) answerDuplicate(w http.ResponseWriter, r *http.Request, got intake.Submitted) {
	s.metrics.duplicates.Inc()
	view, err := s.view(r.Context(), got.Existing)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	created := false
	view.Created = &created
	writeJSON(w, http.StatusOK, view)
}

// limit takes a token from the student's bucket, refusing with 429 and
// Retry-After when there is none.
func (s *server) limit(ctx context.Context, w http.ResponseWriter, student string) error {
	ok, wait, err := s.store.TakeToken(ctx, "student:"+student,
		store.RateLimit{PerMinute: s.cfg.RatePerMinute, Burst: s.cfg.RateBurst}, s.now())
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	s.metrics.rateLimited.Inc()
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	return errorf(http.StatusTooManyRequests, codeRateLimited,
		"too many submissions from %s; retry in %d s", student, max(secs, 1))
}

// view adds the queue position and ETA to a submission that waits.
func (s *server) view(ctx context.Context, sub store.Submission) (submissionView, error) {
	sub, err := s.shown(ctx, sub)
	if err != nil {
		return submissionView{}, err
	}
	v := submissionView{Submission: sub, StatusURL: statusURL(sub.ID)}
	if isStaff(ctx) {
		v.Runs = sub.RunList()
	}
	switch sub.Stage {
	case contract.StageSubmitted, contract.StageSanity, contract.StageQueued:
	default:
		return v, nil
	}
	q, err := s.queue.get(ctx)
	if err != nil {
		return v, err
	}
	all, pos, err := s.ahead(ctx, q, sub)
	if err != nil {
		return v, err
	}
	v.Position = &pos
	// Those still in their sanity check that will queue ahead of it count
	// for the estimate, not the position.
	ahead := all
	left := 0.0
	if sub.Stage != contract.StageQueued {
		age := 0.0
		if sub.Times.Submitted != nil {
			age = s.now().Sub(*sub.Times.Submitted).Seconds()
		}
		left = q.preQueueLeft(age, sub.Lane)
	}
	if start, done, ok := q.estimate(ahead, left); ok {
		v.StartETASeconds, v.ETASeconds = &start, &done
	}
	return v, nil
}

// ahead counts the submissions the server will dispatch before sub, in
// all (those still before the queue included) and those queued now (its
// position), by the dispatch model of q.mode. Before the queue, the
// queue measurement (at most the cache's age old) is used, which spares
// each poll a query. In the queue, the queued submissions are read per
// request, so the position is exact, with the measurement's submissions
// still before the queue (which can go ahead of it only when fair).
func (s *server) ahead(ctx context.Context, q queueStats, sub store.Submission) (all, queued int64, err error) {
	self := store.WaitingOf(sub)
	waiting := q.waiting
	if sub.Stage == contract.StageQueued {
		fresh, err := s.store.WaitingSubmissions(ctx, contract.StageQueued)
		if err != nil {
			return 0, 0, err
		}
		in := make(map[string]bool, len(fresh))
		for _, w := range fresh {
			in[w.ID] = true
		}
		for _, w := range q.waiting {
			if w.Stage != contract.StageQueued && !in[w.ID] {
				fresh = append(fresh, w)
			}
		}
		waiting = fresh
	}
	tasks := make([]dispatch.Task, 0, len(waiting)+1)
	found := false
	for _, w := range waiting {
		if w.ID == sub.ID {
			w, found = self, true // as the request read it
		}
		tasks = append(tasks, dispatch.TaskOf(w))
	}
	if !found {
		tasks = append(tasks, dispatch.TaskOf(self))
	}
	all, queued, _ = dispatch.Ahead(q.mode, q.assign(tasks), sub.ID)
	return all, queued, nil
}

// getSubmission answers a submission's document, with its queue position.
func (s *server) getSubmission(w http.ResponseWriter, r *http.Request) {
	sub, err := s.store.Submission(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.view(r.Context(), sub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// Page sizes of the submission list.
const (
	defaultPage = 50
	maxPage     = 200
)

// submissionPage is a page of the submission list.
type submissionPage struct {
	Submissions []store.Submission `json:"submissions"`
	NextCursor  string             `json:"next_cursor,omitempty"`
}

// cursor is the opaque page cursor's content.
type cursor struct {
	Submitted int64  `json:"t"` // Unix milliseconds
	ID        string `json:"id"`
}

// listSubmissions answers a page of a student's or an assignment's
// submissions, newest first. A filter is required: an index serves each
// filtered listing, where listing everything would read the whole history.
func (s *server) listSubmissions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := contract.Status(q.Get("status"))
	switch {
	case status == "":
	case !isStaff(r.Context()):
		s.fail(w, r, &apiError{Status: http.StatusForbidden, Code: codeForbidden, Msg: "listing by status is for staff tokens"})
		return
	case status != contract.StatusQuarantined:
		s.fail(w, r, invalidField("status", "only %q: the status index serves the submissions held for staff", contract.StatusQuarantined))
		return
	case q.Get("student") != "" || q.Get("assignment") != "":
		s.fail(w, r, invalidField("status", "lists on its own, without student or assignment"))
		return
	}
	if q.Get("student") == "" && q.Get("assignment") == "" && status == "" {
		s.fail(w, r, &apiError{Status: http.StatusBadRequest, Code: codeMissingField, Field: "student",
			Msg: "missing field: student (or assignment): listings are filtered by student, assignment or both"})
		return
	}
	limit := defaultPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			s.fail(w, r, invalidField("limit", "must be an integer from 1 to %d", maxPage))
			return
		}
		limit = n
	}
	var after store.PageCursor
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			s.fail(w, r, invalidField("cursor", "not a cursor this API returned"))
			return
		}
		after = store.PageCursor{Submitted: time.UnixMilli(c.Submitted).UTC(), ID: c.ID}
	}
	subs, err := s.store.ListSubmissions(r.Context(),
		store.SubmissionFilter{Student: q.Get("student"), Assignment: q.Get("assignment"), Status: status}, after, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page := submissionPage{Submissions: subs}
	if len(subs) > limit {
		page.Submissions = subs[:limit]
		last := subs[limit-1]
		c := cursor{ID: last.ID}
		if last.Times.Submitted != nil {
			c.Submitted = last.Times.Submitted.UnixMilli()
		}
		page.NextCursor = encodeCursor(c)
	}
	if !isStaff(r.Context()) {
		if err := s.forStudents(r.Context(), page.Submissions); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return cursor{}, err
	}
	if c.ID == "" {
		return cursor{}, errors.New("cursor without id")
	}
	return c, nil
}

// cancelSubmission asks Temporal to cancel a submission's workflow; the
// workflow records the cancellation itself.
func (s *server) cancelSubmission(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sub, err := s.store.Submission(ctx, mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done := errorf(http.StatusConflict, codeAlreadyDone, "submission %s is done already (%s)", sub.ID, sub.Status)
	if sub.Stage == contract.StageDone {
		s.fail(w, r, done)
		return
	}
	// Temporal accepts a cancel request for a closed workflow, so ask first.
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, sub.WorkflowID, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		s.fail(w, r, done)
		return
	}
	if err := s.temporal.CancelWorkflow(ctx, sub.WorkflowID, ""); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{
		"id": sub.ID, "workflow_id": sub.WorkflowID, "status": "cancel_requested", "status_url": statusURL(sub.ID),
	})
}

// releaseSubmission releases a quarantined submission: its workflow runs
// the execute step again, with a fresh count of worker deaths. The signal
// goes first; the read model is moved back to queued only while it still
// says quarantined, so the new attempt's own claim is never undone.
func (s *server) releaseSubmission(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sub, err := s.store.Submission(ctx, mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sub.Status != contract.StatusQuarantined {
		s.fail(w, r, errorf(http.StatusConflict, codeNotQuarantined, "submission %s is not quarantined (%s)", sub.ID, sub.Status))
		return
	}
	if err := s.temporal.SignalWorkflow(ctx, sub.WorkflowID, "", contract.SignalRelease, "staff"); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.store.ReleaseQuarantined(ctx, sub.ID, time.Now()); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("released from quarantine", zap.String("submission_id", sub.ID))
	writeJSON(w, http.StatusAccepted, map[string]string{
		"id": sub.ID, "workflow_id": sub.WorkflowID, "status": "released", "status_url": statusURL(sub.ID),
	})
}

// regradeSubmission grades a submission's files again as a new submission
// "<id>-r<N>", linked to the old one by regrade_of.
func (s *server) regradeSubmission(w http.ResponseWriter, r *http.Request) {
	got, err := s.intake.Regrade(r.Context(), mux.Vars(r)["id"])
	if errors.Is(err, intake.ErrUnknownAssignment) {
		err = &apiError{Status: http.StatusConflict, Code: codeUnknownAssign, Msg: err.Error()}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.accepted.Inc()
	w.Header().Set("Location", statusURL(got.ID))
	writeJSON(w, http.StatusAccepted, accepted{
		ID: got.ID, WorkflowID: got.WorkflowID, StatusURL: statusURL(got.ID), Created: true, RegradeOf: got.RegradeOf,
	})
}
