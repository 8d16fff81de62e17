package intake

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Regrade-all scopes.
const (
	ScopeLatest = "latest" // each student's newest submission
	ScopeAll    = "all"    // every submission
)

// planConcurrency bounds the store calls a plan makes at once (reserving
// regrade IDs).
const planConcurrency = 8

// beforeLookback bounds how many of a submission's latest regrade numbers
// a plan reads to find its latest graded regrade.
const beforeLookback = 16

// runIDPattern is what a regrade-all run ID looks like.
var runIDPattern = regexp.MustCompile(`^rg-[A-Za-z0-9-]{1,64}$`)

// RegradeAllRequest asks for a regrade of an assignment's submissions.
type RegradeAllRequest struct {
	Assignment string
	Scope      string // ScopeLatest (empty) or ScopeAll
	// ID names the run ("rg-…"); empty: a new one. A request repeated with
	// the same ID answers the run planned the first time, and makes sure
	// its workflow runs, instead of planning another.
	ID string
}

// RegradeAll plans a regrade of an assignment's submissions and starts the
// workflow that starts the regrades, in the regrade lane: below live
// submissions in priority, and fair between regrades of different
// assignments. Regrades are never regraded again: the scope counts
// original submissions.
//
// The plan is cheap and made here: the submissions are listed, each gets
// its regrade ID reserved ("<id>-r<N>") and its score before, and the run
// is stored whole before anything starts. The workflow
// (contract.RegradeAllName) then starts each planned regrade under its
// reserved ID, so a worker or an API that dies midway orphans nothing. If
// the workflow cannot be started, the run is removed again.
func (s *Service) RegradeAll(ctx context.Context, req RegradeAllRequest) (RegradeReport, error) {
	switch req.Scope {
	case "":
		req.Scope = ScopeLatest
	case ScopeLatest, ScopeAll:
	default:
		return RegradeReport{}, invalid("scope", "must be %q or %q", ScopeLatest, ScopeAll)
	}
	if req.ID != "" && !runIDPattern.MatchString(req.ID) {
		return RegradeReport{}, invalid("id", "must be \"rg-\" and 1-64 characters of a-z, A-Z, 0-9 or '-'")
	}
	if req.ID != "" {
		if rep, found, err := s.resumeRun(ctx, req); found || err != nil {
			return rep, err
		}
	}
	if _, err := s.store.Assignment(ctx, req.Assignment); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("assignment %q: %w", req.Assignment, ErrUnknownAssignment)
		}
		return RegradeReport{}, err
	}
	id := req.ID
	if id == "" {
		id = "rg-" + NewID(s.now())
	}
	run := store.RegradeRun{ID: id, Assignment: req.Assignment, Scope: req.Scope, CreatedAt: s.now().UTC().Truncate(time.Millisecond),
		WorkflowID: contract.RegradeAllWorkflowID(id)}
	subs, err := s.regradable(ctx, req.Assignment, req.Scope)
	if err != nil {
		return RegradeReport{}, err
	}
	if run.Items, err = s.plan(ctx, subs); err != nil {
		return RegradeReport{}, err
	}
	created, err := s.store.CreateRegradeRun(ctx, run)
	if err != nil {
		return RegradeReport{}, err
	}
	if !created { // a concurrent request with the same ID planned first
		rep, _, err := s.resumeRun(ctx, req)
		return rep, err
	}
	if err := s.startRun(ctx, run); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.store.DeleteRegradeRun(dctx, run.ID); derr != nil {
			s.opts.Log.Warn("roll back regrade run", zap.String("regrade_id", run.ID), zap.Error(derr))
		}
		return RegradeReport{}, err
	}
	s.opts.Log.Info("regrade-all planned", zap.String("regrade_id", run.ID), zap.String("assignment", run.Assignment),
		zap.Int("items", len(run.Items)))
	return report(run, nil), nil
}

// resumeRun answers the run req.ID names, if it exists (found false
// otherwise), after making sure its workflow runs.
func (s *Service) resumeRun(ctx context.Context, req RegradeAllRequest) (rep RegradeReport, found bool, err error) {
	run, err := s.store.RegradeRunByID(ctx, req.ID)
	if errors.Is(err, store.ErrNotFound) {
		return RegradeReport{}, false, nil
	}
	if err != nil {
		return RegradeReport{}, false, err
	}
	if run.Assignment != req.Assignment || run.Scope != req.Scope {
		return RegradeReport{}, true, fmt.Errorf("regrade %s exists for another assignment or scope: %w", req.ID, ErrConflict)
	}
	if run.WorkflowID != "" {
		if err := s.startRun(ctx, run); err != nil {
			return RegradeReport{}, true, err
		}
	}
	rep, err = s.RegradeReport(ctx, run.ID)
	return rep, true, err
}

// startRun starts the run's workflow, or finds the one that runs or ran
// (a run whose workflow failed may be started again).
func (s *Service) startRun(ctx context.Context, run store.RegradeRun) error {
	in := contract.RegradeAllInput{RunID: run.ID, Assignment: run.Assignment, Items: len(run.Items)}
	_, err := s.temporal.ExecuteWorkflow(ctx, contract.RegradeAllStartOptions(in), contract.RegradeAllName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start workflow %s: %w", run.WorkflowID, err)
	}
	return nil
}

// regradable lists the assignment's original submissions in scope, newest
// first.
func (s *Service) regradable(ctx context.Context, assignment, scope string) ([]store.Submission, error) {
	seen := map[string]bool{}
	var subs []store.Submission
	for cursor := (store.PageCursor{}); ; {
		page, err := s.store.ListSubmissions(ctx, store.SubmissionFilter{Assignment: assignment}, cursor, 500)
		if err != nil {
			return nil, err
		}
		for _, sub := range page {
			if sub.RegradeOf != "" || sub.Uploading || (scope == ScopeLatest && seen[sub.Student]) {
				continue
			}
			seen[sub.Student] = true
			subs = append(subs, sub)
		}
		if len(page) < 500 {
			return subs, nil
		}
		last := page[len(page)-1]
		cursor = store.PageCursor{ID: last.ID}
		if last.Times.Submitted != nil {
			cursor.Submitted = *last.Times.Submitted
		}
	}
}

// plan reserves each submission's regrade ID and finds its grade before:
// that of its latest graded regrade, if it has one, else its own.
func (s *Service) plan(ctx context.Context, subs []store.Submission) ([]store.RegradeItem, error) {
	numbers := make([]int, len(subs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(planConcurrency)
	for i, sub := range subs {
		g.Go(func() error {
			n, err := s.store.NextRegrade(gctx, sub.ID)
			numbers[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var earlier []string
	for i, sub := range subs {
		earlier = append(earlier, earlierRegrades(sub.ID, numbers[i])...)
	}
	found, err := s.store.SubmissionsByID(ctx, earlier)
	if err != nil {
		return nil, err
	}
	items := make([]store.RegradeItem, len(subs))
	for i, sub := range subs {
		items[i] = planItem(sub, numbers[i], found)
	}
	return items, nil
}

// earlierRegrades are the IDs of the latest regrades of id made before
// regrade number n (at most beforeLookback of them), newest first.
func earlierRegrades(id string, n int) []string {
	var out []string
	for k := n - 1; k >= 1 && k >= n-beforeLookback; k-- {
		out = append(out, regradeID(id, k))
	}
	return out
}

// regradeID is the ID of regrade number n of submission id.
func regradeID(id string, n int) string { return fmt.Sprintf("%s-r%d", id, n) }

// planItem is the planned regrade number n of sub. Its "before" is the
// newest of sub's earlier regrades (among found) that was graded, else
// sub itself; so a second regrade-all after a second fix reports the
// change since the last regrade.
func planItem(sub store.Submission, n int, found map[string]store.Submission) store.RegradeItem {
	before := sub
	for _, id := range earlierRegrades(sub.ID, n) {
		if r, ok := found[id]; ok && r.RegradeOf == sub.ID && r.Stage == contract.StageDone && r.Status == contract.StatusGraded {
			before = r
			break
		}
	}
	it := store.RegradeItem{From: sub.ID, Student: sub.Student, BeforeID: before.ID, BeforeScore: before.Score, BeforeMax: before.MaxScore,
		Before: outcomeOf(before), BeforeGrader: before.Grader}
	if rid := regradeID(sub.ID, n); contract.ValidID(rid) {
		it.To = rid
	} else {
		it.Error = fmt.Sprintf("regrade ID %s would be too long", rid)
	}
	return it
}

// outcomeOf is a submission's outcome, or its status when it has none.
func outcomeOf(sub store.Submission) string {
	if sub.Outcome != "" {
		return string(sub.Outcome)
	}
	return string(sub.Status)
}

// RegradeRun returns a regrade-all run, the marks of its workflow folded
// into its items.
func (s *Service) RegradeRun(ctx context.Context, id string) (store.RegradeRun, error) {
	return s.store.RegradeRunByID(ctx, id)
}

// StartRegrade starts item i of a planned run: it grades the submission's
// files again under the item's reserved ID, in the regrade lane. It is
// idempotent: a regrade that exists already (an earlier attempt started
// it) is left as it is, its workflow made sure to run, and nothing is
// graded twice. refused is why the regrade can never start (the
// submission, its files or its assignment are gone, the ID is another
// submission's): retrying will not help. err is anything else, worth
// retrying.
func (s *Service) StartRegrade(ctx context.Context, run store.RegradeRun, i int) (refused string, err error) {
	if i < 0 || i >= len(run.Items) {
		return fmt.Sprintf("regrade %s has no item %d", run.ID, i), nil
	}
	it := run.Items[i]
	switch {
	case it.Error != "":
		return it.Error, nil
	case it.To == "":
		return fmt.Sprintf("no regrade ID was reserved for %s", it.From), nil
	}
	old, err := s.store.Submission(ctx, it.From)
	if err != nil {
		return refusal(err)
	}
	sub := Submission{ID: it.To, Assignment: old.Assignment, Student: old.Student, Lane: contract.LaneRegrade, regradeOf: old.ID}
	got, found, err := s.Resume(ctx, sub)
	if err != nil {
		return refusal(err)
	}
	if !found {
		if sub.Files, err = s.regradeFiles(ctx, old); err != nil {
			return refusal(err)
		}
		if got, err = s.Submit(ctx, sub); err != nil {
			return refusal(err)
		}
	}
	if !got.Created && got.Existing.RegradeOf != old.ID {
		return fmt.Sprintf("regrade ID %s is taken by another submission", it.To), nil
	}
	return "", nil
}

// refusal sorts a failure to start a regrade: the ones retrying cannot
// mend are refusals, the rest are returned to be retried.
func refusal(err error) (string, error) {
	var fe *FieldError
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrTooLarge), errors.Is(err, ErrUnknownAssignment),
		errors.Is(err, ErrConflict), errors.As(err, &fe):
		return err.Error(), nil
	}
	return "", err
}

// MarkRegrade records item i of run id as started now, or, with refused
// set, as never to start.
func (s *Service) MarkRegrade(ctx context.Context, id string, i int, refused string) error {
	return s.store.MarkRegradeItem(ctx, id, i, s.now(), refused)
}

// RegradeChange is one submission's score before and after a regrade.
type RegradeChange struct {
	Student      string  `json:"student"`
	From         string  `json:"from"`
	To           string  `json:"to,omitempty"`
	Before       float64 `json:"before"`
	After        float64 `json:"after"`
	MaxScore     float64 `json:"max_score"`
	BeforeStatus string  `json:"before_outcome"`
	AfterStatus  string  `json:"after_outcome,omitempty"`
	Error        string  `json:"error,omitempty"`
	// BeforeID is the submission the before is of: From, or From's latest
	// graded regrade.
	BeforeID string `json:"before_id,omitempty"`
	// BeforeGrader and AfterGrader are the grader versions of the two
	// grades, when the read model recorded them.
	BeforeGrader *store.Grader `json:"before_grader,omitempty"`
	AfterGrader  *store.Grader `json:"after_grader,omitempty"`
}

// RegradeReport is a regrade-all's progress and its before/after report.
// Every item is planned (its regrade ID reserved), then started by the
// run's workflow, then done; or failed: it could not be started.
type RegradeReport struct {
	store.RegradeRun
	Total   int `json:"total"`
	Planned int `json:"planned"` // not started yet
	Started int `json:"started"`
	Done    int `json:"done"`
	Failed  int `json:"failed"` // could not be started
	// Changed are the items whose score, outcome or maximum changed, and
	// the failed ones (with their error).
	Changed   []RegradeChange `json:"changed"`
	Unchanged int             `json:"unchanged"`
	// Pending are the regrades not graded yet, planned or started: the run
	// is over when it is empty.
	Pending []string `json:"pending,omitempty"`
}

// RegradeReport reads a regrade-all run back with its scores after.
func (s *Service) RegradeReport(ctx context.Context, id string) (RegradeReport, error) {
	run, err := s.store.RegradeRunByID(ctx, id)
	if err != nil {
		return RegradeReport{}, err
	}
	var ids []string
	for _, it := range run.Items {
		if it.To != "" && it.Error == "" {
			ids = append(ids, it.To)
		}
	}
	after, err := s.store.SubmissionsByID(ctx, ids)
	if err != nil {
		return RegradeReport{}, err
	}
	return report(run, after), nil
}

// report is the run's report, given the regrades that exist (by ID).
func report(run store.RegradeRun, after map[string]store.Submission) RegradeReport {
	rep := RegradeReport{RegradeRun: run, Total: len(run.Items), Changed: []RegradeChange{}}
	for _, it := range run.Items {
		c := RegradeChange{Student: it.Student, From: it.From, To: it.To, Before: it.BeforeScore, MaxScore: it.BeforeMax, BeforeStatus: it.Before,
			Error: it.Error, BeforeID: it.BeforeID, BeforeGrader: it.BeforeGrader}
		switch {
		case it.Error != "":
			rep.Failed++
			rep.Changed = append(rep.Changed, c)
			continue
		case it.To == "":
			continue
		}
		sub, exists := after[it.To]
		// Runs from before the workflow started every item they name;
		// a regrade may also exist before its mark is written.
		if it.StartedAt == nil && run.WorkflowID != "" && (!exists || sub.Uploading) {
			rep.Planned++
			rep.Pending = append(rep.Pending, it.To)
			continue
		}
		rep.Started++
		if !exists || sub.Stage != contract.StageDone {
			rep.Pending = append(rep.Pending, it.To)
			continue
		}
		rep.Done++
		c.After, c.MaxScore, c.AfterStatus, c.AfterGrader = sub.Score, sub.MaxScore, outcomeOf(sub), sub.Grader
		if c.After != c.Before || c.AfterStatus != c.BeforeStatus || sub.MaxScore != it.BeforeMax {
			rep.Changed = append(rep.Changed, c)
		} else {
			rep.Unchanged++
		}
	}
	return rep
}
