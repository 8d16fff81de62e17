package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
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

	// With a rate limit, a known ID is answered before it: a client
	// retrying a lost answer is never refused. (A fresh ID cannot be known,
	// and without a limit Submit finds duplicates itself.)
	if s.cfg.RatePerMinute > 0 && clientID {
		if existing, err := s.store.Submission(ctx, sub.ID); err == nil {
			s.answerDuplicate(w, r, sub, existing, true)
			return
		} else if !errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, err)
			return
		}
	}
	if err := s.assignmentExists(ctx, sub.Assignment); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.limit(ctx, w, sub.Student); err != nil {
		s.fail(w, r, err)
		return
	}
	run, created, err := workflows.Submit(ctx, s.temporal, s.store, sub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !created { // known already; Submit made sure its workflow runs
		existing, err := s.store.Submission(ctx, sub.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.answerDuplicate(w, r, sub, existing, false)
		return
	}
	s.metrics.accepted.Inc()
	w.Header().Set("Location", statusURL(sub.ID))
	writeJSON(w, http.StatusAccepted, accepted{ID: sub.ID, WorkflowID: run.GetID(), StatusURL: statusURL(sub.ID), Created: true})
}

// newSubmission checks a submission form and names the submission;
// clientID reports that the client chose the name.
func (s *server) newSubmission(r *http.Request, f *form) (sub workflows.NewSubmission, clientID bool, err error) {
	sub = workflows.NewSubmission{Assignment: f.fields["assignment"], Student: f.fields["student"], ID: f.fields["id"]}
	switch {
	case sub.Assignment == "":
		return sub, false, missingField("assignment")
	case sub.Student == "":
		return sub, false, missingField("student")
	case !validStudent(sub.Student):
		return sub, false, invalidField("student", "must be 1-128 printable characters without spaces")
	}
	_, hasID := f.fields["id"]
	key := r.Header.Get(HeaderIdempotencyKey)
	switch {
	case hasID && !store.ValidID(sub.ID):
		return sub, false, invalidField("id", "must be 1-128 characters of a-z, A-Z, 0-9, '-', '_' or '.', not starting with '.'")
	case hasID:
	case key != "":
		if len(key) > 255 {
			return sub, false, errorf(http.StatusBadRequest, codeInvalidField, "%s is longer than 255 bytes", HeaderIdempotencyKey)
		}
		sub.ID = idempotentID(sub.Student, key)
	default:
		sub.ID = newSubmissionID(time.Now())
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
	case len(files) == 0:
		return sub, false, missingField("files")
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

// newSubmissionID returns a fresh ID that sorts by time.
func newSubmissionID(now time.Time) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b)
}

// answerDuplicate answers a POST whose ID exists: with the existing
// submission when it is the same student's for the same assignment, with
// 409 otherwise. With ensureRun, its workflow is made sure to run (an
// earlier request may have died between storing and starting it); a
// workflow that ran is never started again, so nothing is graded twice.
func (s *server) answerDuplicate(w http.ResponseWriter, r *http.Request, sub workflows.NewSubmission, existing store.Submission, ensureRun bool) {
	if existing.Student != sub.Student || existing.Assignment != sub.Assignment {
		s.fail(w, r, &apiError{Status: http.StatusConflict, Code: codeConflict, Field: "id",
			Msg: fmt.Sprintf("submission %s exists for another student or assignment", sub.ID)})
		return
	}
	if ensureRun {
		in := workflows.Input{SubmissionID: existing.ID, Assignment: existing.Assignment, Student: existing.Student}
		if _, err := workflows.Start(r.Context(), s.temporal, in); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.metrics.duplicates.Inc()
	view, err := s.view(r.Context(), existing)
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
	v := submissionView{Submission: sub, StatusURL: statusURL(sub.ID)}
	switch sub.Stage {
	case store.StageSubmitted, store.StageSanity, store.StageQueued:
	default:
		return v, nil
	}
	q, err := s.queue.get(ctx)
	if err != nil {
		return v, err
	}
	// Before the queue every queued submission is ahead: that count is the
	// queue measurement's (at most the cache's age old), which spares each
	// poll a count. In the queue, the count is exact and per request.
	pos := q.Queued
	if sub.Stage == store.StageQueued {
		if pos, err = s.store.QueuePosition(ctx, sub); err != nil {
			return v, err
		}
	}
	v.Position = &pos
	// Those still in their sanity check but submitted earlier will queue
	// ahead of it too: they count for the estimate, not the position.
	ahead := pos
	if sub.Stage != store.StageQueued {
		ahead += q.preQueueAhead(sub.Times.Submitted)
	}
	if start, done, ok := q.estimate(ahead, sub.Stage != store.StageQueued); ok {
		v.StartETASeconds, v.ETASeconds = &start, &done
	}
	return v, nil
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

// listSubmissions answers a page of submissions, newest first.
func (s *server) listSubmissions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
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
		store.SubmissionFilter{Student: q.Get("student"), Assignment: q.Get("assignment")}, after, limit+1)
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
	if sub.Stage == store.StageDone {
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

// regradeSubmission grades a submission's files again as a new submission
// "<id>-r<N>", linked to the old one by regrade_of.
func (s *server) regradeSubmission(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	old, err := s.store.Submission(ctx, mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.store.Assignment(ctx, old.Assignment); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = errorf(http.StatusConflict, codeUnknownAssign, "assignment %q no longer exists", old.Assignment)
		}
		s.fail(w, r, err)
		return
	}
	files, err := s.store.SubmissionFiles(ctx, old.ID, s.cfg.MaxUpload)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(files) == 0 {
		s.fail(w, r, errorf(http.StatusConflict, codeConflict, "submission %s has no stored files to regrade", old.ID))
		return
	}
	n, err := s.store.NextRegrade(ctx, old.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Another regrade may take N between our read and our insert: then the
	// next number is tried.
	for range 8 {
		id := fmt.Sprintf("%s-r%d", old.ID, n)
		if !store.ValidID(id) {
			s.fail(w, r, errorf(http.StatusConflict, codeConflict, "regrade ID %s would be too long", id))
			return
		}
		run, created, err := workflows.Submit(ctx, s.temporal, s.store, workflows.NewSubmission{
			ID: id, Assignment: old.Assignment, Student: old.Student, Files: files,
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !created {
			n++
			continue
		}
		if err := s.store.SetRegradeOf(ctx, id, old.ID); err != nil {
			// The regrade runs; only its link is missing. Not worth failing for.
			s.log.Warn("link regrade", zap.String("request_id", requestInfoOf(ctx).id), zap.Error(err))
		}
		s.metrics.accepted.Inc()
		w.Header().Set("Location", statusURL(id))
		writeJSON(w, http.StatusAccepted, accepted{
			ID: id, WorkflowID: run.GetID(), StatusURL: statusURL(id), Created: true, RegradeOf: old.ID,
		})
		return
	}
	s.fail(w, r, errorf(http.StatusConflict, codeConflict, "too many concurrent regrades of %s; retry", old.ID))
}
