package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
)

// shown is a submission as the request's token may see it: in full for
// staff; for the portal, hidden tests (and after_due ones before the due
// date) as name, score and status only, and no job logs. While the job
// runs, the tests that have finished are its tests.
func (s *server) shown(ctx context.Context, sub store.Submission) (store.Submission, error) {
	if len(sub.LiveTests) == 0 && !isStaff(ctx) && !sub.HasWithheld() && !hasLogs(sub) {
		return sub, nil
	}
	var a contract.Assignment
	if sub.HasWithheld() || len(sub.LiveTests) > 0 {
		got, err := s.store.Assignment(ctx, sub.Assignment)
		switch {
		case errors.Is(err, store.ErrNotFound): // removed: nothing is ever released
		case err != nil:
			return store.Submission{}, err
		default:
			a = got
		}
	}
	if len(sub.LiveTests) > 0 && sub.Stage != contract.StageDone {
		order := map[string]int{}
		for i, t := range a.Tests {
			order[t.Name] = i
		}
		sub.Tests = sub.Tests[:0:0]
		for _, t := range sub.LiveTests {
			sub.Tests = append(sub.Tests, t)
		}
		sort.Slice(sub.Tests, func(i, j int) bool { return order[sub.Tests[i].Name] < order[sub.Tests[j].Name] })
	}
	if isStaff(ctx) {
		return sub, nil
	}
	return sub.ForStudents(a.DueAt, s.now()), nil
}

// forStudents redacts a page of submissions for the portal, looking up
// each assignment's due date once.
func (s *server) forStudents(ctx context.Context, subs []store.Submission) error {
	due := map[string]*time.Time{}
	for i, sub := range subs {
		if !sub.HasWithheld() && !hasLogs(sub) {
			continue
		}
		d, ok := due[sub.Assignment]
		if !ok && sub.HasWithheld() {
			a, err := s.store.Assignment(ctx, sub.Assignment)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			d, due[sub.Assignment] = a.DueAt, a.DueAt
		}
		subs[i] = sub.ForStudents(d, s.now())
	}
	return nil
}

func hasLogs(sub store.Submission) bool {
	for _, t := range sub.Tests {
		if t.LogTail != "" {
			return true
		}
	}
	return false
}

// gradescopeResult is a result in the field layout of gradescope's
// autograder results.json, for portals that already render that format.
type gradescopeResult struct {
	Score         float64          `json:"score"`
	ExecutionTime float64          `json:"execution_time"`
	Output        string           `json:"output"`
	Visibility    string           `json:"visibility"`
	Tests         []gradescopeTest `json:"tests"`
	ExtraData     map[string]any   `json:"extra_data"`
}

// gradescopeTest is one test of a gradescopeResult.
type gradescopeTest struct {
	Name       string  `json:"name"`
	Score      float64 `json:"score"`
	MaxScore   float64 `json:"max_score"`
	Status     string  `json:"status"` // "passed" or "failed"
	Visibility string  `json:"visibility"`
	Output     string  `json:"output"`
}

// gradescopeVisibility maps a test's visibility to gradescope's names.
var gradescopeVisibility = map[string]string{
	contract.VisibilityVisible: "visible", contract.VisibilityHidden: "hidden",
	contract.VisibilityAfterDue: "after_due_date", "": "visible",
}

// resultsJSON answers a graded submission as gradescope's results.json.
func (s *server) resultsJSON(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sub, err := s.store.Submission(ctx, mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sub.Stage != contract.StageDone {
		s.fail(w, r, errorf(http.StatusConflict, codeConflict, "submission %s is not graded yet (stage %s)", sub.ID, sub.Stage))
		return
	}
	if sub, err = s.shown(ctx, sub); err != nil {
		s.fail(w, r, err)
		return
	}
	res := gradescopeResult{Score: sub.Score, ExecutionTime: sub.RunSeconds, Output: sub.Feedback, Visibility: "visible",
		Tests: []gradescopeTest{}, ExtraData: map[string]any{"submission_id": sub.ID, "status": sub.Status, "outcome": sub.Outcome, "max_score": sub.MaxScore}}
	for _, t := range sub.Tests {
		status := "failed"
		if t.Passed {
			status = "passed"
		}
		out := t.Feedback
		if t.Diff != "" {
			out = strings.TrimSpace(out + "\n" + t.Diff)
		}
		res.Tests = append(res.Tests, gradescopeTest{Name: t.Name, Score: t.Score, MaxScore: t.MaxScore, Status: status,
			Visibility: gradescopeVisibility[t.Visibility], Output: out})
	}
	writeJSON(w, http.StatusOK, res)
}

// putDataset stores a dataset from the raw request body, streaming: it is
// hashed while stored and never held in memory.
func (s *server) putDataset(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if !contract.ValidName(name) {
		s.fail(w, r, invalidField("name", "must be 1-64 characters of a-z, 0-9, '-' or '_'"))
		return
	}
	body := http.MaxBytesReader(unwrapWriter(w), r.Body, s.cfg.MaxDataset)
	d, err := s.intake.PutDataset(r.Context(), name, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, _ = io.Copy(io.Discard, body)
	writeJSON(w, http.StatusOK, d)
}

// getDataset answers a dataset's hash and size.
func (s *server) getDataset(w http.ResponseWriter, r *http.Request) {
	d, err := s.store.GetDataset(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// regradeAll plans a regrade of an assignment's submissions (each
// regrade's ID reserved, the run stored) and starts the workflow that
// starts them in the regrade lane. It answers at once, before any regrade
// starts: GET /v1/regrades/{id} (Location) follows the progress and gives
// the before/after report. A request repeated with the same "id" answers
// the run planned the first time.
func (s *server) regradeAll(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Scope string `json:"scope"`
		ID    string `json:"id"`
	}
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(unwrapWriter(w), r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			s.fail(w, r, errorf(http.StatusBadRequest, codeMalformed, "body must be {\"scope\": \"latest\" or \"all\", \"id\": optional run ID}: %v", err))
			return
		}
	}
	rep, err := s.intake.RegradeAll(r.Context(), intake.RegradeAllRequest{Assignment: mux.Vars(r)["name"], Scope: req.Scope, ID: req.ID})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/regrades/"+rep.ID)
	writeJSON(w, http.StatusAccepted, rep)
}

// getRegrade answers a regrade-all's progress and before/after report.
func (s *server) getRegrade(w http.ResponseWriter, r *http.Request) {
	rep, err := s.intake.RegradeReport(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
