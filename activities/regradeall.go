package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Regrades starts the planned regrades of regrade-all runs: the intake
// (intake.Service) in production, a fake in tests.
type Regrades interface {
	// RegradeRun returns a planned run with the marks of its items
	// (store.ErrNotFound when there is none).
	RegradeRun(ctx context.Context, id string) (store.RegradeRun, error)
	// StartRegrade starts item i under its reserved regrade ID, or finds
	// it started. refused is why it can never start; err is a failure
	// worth retrying.
	StartRegrade(ctx context.Context, run store.RegradeRun, i int) (refused string, err error)
	// MarkRegrade records item i as started, or, with refused set, as
	// never to start (refused is the item's error).
	MarkRegrade(ctx context.Context, runID string, i int, refused string) error
}

// StartRegrades starts every planned regrade of a regrade-all run, in
// order, each under the ID reserved for it when the run was planned, and
// marks each item in the run as started or refused (what GET
// /v1/regrades/{id} reads). After each item it heartbeats how far it got
// (contract.RegradesStarted), so a retried attempt resumes there; items
// marked already are skipped, and starting one again is harmless: its ID
// is fixed, so it is found, never graded twice. An item that can never
// start (its files are gone) is recorded with its error and the run goes
// on; a failure of the store or Temporal is returned and retried. A run
// that does not exist is a ConfigFailure: retrying will not make it.
func (a *Activities) StartRegrades(ctx context.Context, req contract.StartRegradesRequest) (contract.RegradesStarted, error) {
	log := activity.GetLogger(ctx)
	run, err := a.Regrades.RegradeRun(ctx, req.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return contract.RegradesStarted{}, contract.NewConfigFailure("regrade %s does not exist", req.RunID)
	}
	if err != nil {
		return contract.RegradesStarted{}, err
	}
	var p contract.RegradesStarted
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &p); err != nil {
			log.Warn("heartbeat details unreadable: starting over", "regrade_id", req.RunID, "error", err)
			p = contract.RegradesStarted{}
		}
	}
	if p.Next > 0 {
		log.Info("resuming regrade-all", "regrade_id", req.RunID, "next", p.Next, "items", len(run.Items))
	}
	for i := p.Next; i < len(run.Items); i++ {
		it := run.Items[i]
		switch {
		case it.Error != "":
			p.Refused++
		case it.StartedAt != nil:
			p.Started++
		default:
			refused, err := a.Regrades.StartRegrade(ctx, run, i)
			if err != nil {
				return p, fmt.Errorf("start regrade %s of %s: %w", it.To, it.From, err)
			}
			if err := a.Regrades.MarkRegrade(ctx, run.ID, i, refused); err != nil {
				return p, err
			}
			if refused != "" {
				log.Warn("regrade refused", "regrade_id", run.ID, "submission_id", it.From, "error", refused)
				p.Refused++
			} else {
				p.Started++
			}
		}
		p.Next = i + 1
		a.beat(ctx, p)
	}
	return p, nil
}
