package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Regrade-all scopes.
const (
	ScopeLatest = "latest" // each student's newest submission
	ScopeAll    = "all"    // every submission
)

// regradeAllConcurrency bounds the regrades started at once.
const regradeAllConcurrency = 4

// RegradeAll grades an assignment's submissions again, in the regrade
// lane: below live submissions in priority, and fair between regrades of
// different assignments. Regrades are never regraded again: the scope
// counts original submissions. The run is stored first with every
// submission's score before, then each regrade's new ID; RegradeReport
// reads it back with the scores after.
func (s *Service) RegradeAll(ctx context.Context, assignment, scope string) (store.RegradeRun, error) {
	switch scope {
	case "":
		scope = ScopeLatest
	case ScopeLatest, ScopeAll:
	default:
		return store.RegradeRun{}, invalid("scope", "must be %q or %q", ScopeLatest, ScopeAll)
	}
	if _, err := s.store.Assignment(ctx, assignment); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("assignment %q: %w", assignment, ErrUnknownAssignment)
		}
		return store.RegradeRun{}, err
	}
	run := store.RegradeRun{ID: "rg-" + NewID(s.now()), Assignment: assignment, Scope: scope, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	seen := map[string]bool{}
	var subs []store.Submission
	for cursor := (store.PageCursor{}); ; {
		page, err := s.store.ListSubmissions(ctx, store.SubmissionFilter{Assignment: assignment}, cursor, 500)
		if err != nil {
			return store.RegradeRun{}, err
		}
		for _, sub := range page {
			if sub.RegradeOf != "" || sub.Uploading || (scope == ScopeLatest && seen[sub.Student]) {
				continue
			}
			seen[sub.Student] = true
			subs = append(subs, sub)
		}
		if len(page) < 500 {
			break
		}
		last := page[len(page)-1]
		cursor = store.PageCursor{ID: last.ID}
		if last.Times.Submitted != nil {
			cursor.Submitted = *last.Times.Submitted
		}
	}
	for _, sub := range subs {
		before := string(sub.Outcome)
		if before == "" {
			before = string(sub.Status)
		}
		run.Items = append(run.Items, store.RegradeItem{From: sub.ID, Student: sub.Student, BeforeScore: sub.Score, BeforeMax: sub.MaxScore, Before: before})
	}
	if err := s.store.PutRegradeRun(ctx, run); err != nil {
		return store.RegradeRun{}, err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, regradeAllConcurrency)
	for i := range run.Items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			got, err := s.regrade(ctx, subs[i], contract.LaneRegrade)
			if err != nil {
				run.Items[i].Error = err.Error()
				return
			}
			run.Items[i].To = got.ID
		})
	}
	wg.Wait()
	// The run must name its regrades even if the request was canceled.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.store.PutRegradeRun(wctx, run); err != nil {
		return store.RegradeRun{}, err
	}
	return run, nil
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
}

// RegradeReport is a regrade-all's progress and its before/after report.
type RegradeReport struct {
	store.RegradeRun
	Total     int             `json:"total"`
	Started   int             `json:"started"`
	Done      int             `json:"done"`
	Failed    int             `json:"failed"` // could not be started
	Changed   []RegradeChange `json:"changed"`
	Unchanged int             `json:"unchanged"`
	Pending   []string        `json:"pending,omitempty"` // regrades still grading
}

// RegradeReport reads a regrade-all run back with its scores after.
func (s *Service) RegradeReport(ctx context.Context, id string) (RegradeReport, error) {
	run, err := s.store.RegradeRunByID(ctx, id)
	if err != nil {
		return RegradeReport{}, err
	}
	rep := RegradeReport{RegradeRun: run, Total: len(run.Items), Changed: []RegradeChange{}}
	var ids []string
	for _, it := range run.Items {
		if it.To != "" {
			ids = append(ids, it.To)
		}
	}
	after, err := s.store.SubmissionsByID(ctx, ids)
	if err != nil {
		return RegradeReport{}, err
	}
	for _, it := range run.Items {
		c := RegradeChange{Student: it.Student, From: it.From, To: it.To, Before: it.BeforeScore, MaxScore: it.BeforeMax, BeforeStatus: it.Before, Error: it.Error}
		if it.To == "" {
			if it.Error != "" {
				rep.Failed++
				rep.Changed = append(rep.Changed, c)
			}
			continue
		}
		rep.Started++
		sub, ok := after[it.To]
		if !ok || sub.Stage != contract.StageDone {
			rep.Pending = append(rep.Pending, it.To)
			continue
		}
		rep.Done++
		c.After, c.MaxScore = sub.Score, sub.MaxScore
		c.AfterStatus = string(sub.Outcome)
		if c.AfterStatus == "" {
			c.AfterStatus = string(sub.Status)
		}
		if c.After != c.Before || c.AfterStatus != c.BeforeStatus || sub.MaxScore != it.BeforeMax {
			rep.Changed = append(rep.Changed, c)
		} else {
			rep.Unchanged++
		}
	}
	return rep, nil
}
