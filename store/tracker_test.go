//go:build stack

package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestTrackerQuarantine claims execute attempts whose workers die (their
// runs never close) until the next claim quarantines the submission, then
// releases it: a new step starts with a fresh count.
func TestTrackerQuarantine(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if _, err := st.CreateSubmission(ctx, Submission{ID: "q1", Assignment: "wc", Student: "ada", Files: []string{"mapper.py"}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	claim := func(activity string, attempt int) ClaimResult {
		t.Helper()
		res, err := st.ClaimRun(ctx, "q1", contract.Run{ActivityID: activity, Attempt: attempt, Worker: "100@h1", Host: "h1",
			Started: t0.Add(time.Duration(attempt) * time.Second)}, 2)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Attempt 1 fails cleanly (closed): not a death. 2 and 3 die.
	if res := claim("7", 1); res.Claim != Claimed || !res.Tracked || res.Dead != 0 {
		t.Fatalf("attempt 1: %+v", res)
	}
	end := t0.Add(1500 * time.Millisecond)
	if err := st.CloseRun(ctx, "q1", contract.Run{ActivityID: "7", Attempt: 1, Ended: &end, End: contract.RunFailed}); err != nil {
		t.Fatal(err)
	}
	if res := claim("7", 2); res.Claim != Claimed || res.Dead != 0 {
		t.Fatalf("attempt 2: %+v", res)
	}
	if res := claim("7", 3); res.Claim != Claimed || res.Dead != 1 {
		t.Fatalf("attempt 3: %+v", res)
	}
	res := claim("7", 4)
	if res.Claim != ClaimQuarantined || res.Dead != 2 || len(res.Runs) != 4 {
		t.Fatalf("attempt 4: %+v, want quarantined after 2 deaths", res)
	}
	got, err := st.Submission(ctx, "q1")
	if err != nil {
		t.Fatal(err)
	}
	runs := got.RunList()
	ends := []contract.RunEnd{}
	for _, r := range runs {
		ends = append(ends, r.End)
		if r.Worker != "100@h1" || r.Host != "h1" {
			t.Errorf("run %+v: worker or host missing", r)
		}
	}
	if got.Status != contract.StatusQuarantined || got.Stage != contract.StageQuarantined ||
		!slices.Equal(ends, []contract.RunEnd{contract.RunFailed, "", "", contract.RunQuarantined}) {
		t.Fatalf("after quarantine: status %s stage %s runs %+v", got.Status, got.Stage, runs)
	}
	if ok, err := st.ReleaseQuarantined(ctx, "q1", t0); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if ok, err := st.ReleaseQuarantined(ctx, "q1", t0); err != nil || ok {
		t.Fatalf("second release: %v %v, want false", ok, err)
	}
	// The released submission's new step counts afresh.
	if res := claim("13", 1); res.Claim != Claimed || res.Dead != 0 || len(res.Runs) != 5 {
		t.Fatalf("after release: %+v", res)
	}
	got, _ = st.Submission(ctx, "q1")
	if got.Status != contract.StatusPending || got.Stage != contract.StageRunning {
		t.Fatalf("after release and claim: status %s stage %s", got.Status, got.Stage)
	}
}

// TestSupersede supersedes a student's waiting submissions of one
// assignment, never one that runs, another assignment's, another
// student's or a regrade; a superseded one's claim is refused.
func TestSupersede(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	mk := func(id, student, assignment, lane string) {
		t.Helper()
		if _, err := st.CreateSubmission(ctx, Submission{ID: id, Assignment: assignment, Student: student, Files: []string{"m.py"}, Lane: lane}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct submission times
	}
	mk("running", "ada", "wc", "")
	mk("queued", "ada", "wc", "")
	mk("fresh", "ada", "wc", "")
	mk("other-assignment", "ada", "tw", "")
	mk("other-student", "bob", "wc", "")
	mk("regrade", "ada", "wc", contract.LaneRegrade)
	mk("newest", "ada", "wc", "")
	now := time.Now()
	if err := st.MarkStage(ctx, "queued", Mark{Stage: contract.StageQueued, At: now}); err != nil {
		t.Fatal(err)
	}
	if res, err := st.ClaimRun(ctx, "running", contract.Run{ActivityID: "11", Attempt: 1, Started: now}, 3); err != nil || res.Claim != Claimed {
		t.Fatalf("claim running: %+v %v", res, err)
	}
	newest, err := st.Submission(ctx, "newest")
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.SupersedeEarlier(ctx, newest, now)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"fresh", "queued"}) {
		t.Fatalf("superseded %v, want [fresh queued]", got)
	}
	for _, id := range []string{"fresh", "queued"} {
		sub, _ := st.Submission(ctx, id)
		if sub.Status != contract.StatusSuperseded || sub.SupersededBy != "newest" {
			t.Errorf("%s: status %s by %q", id, sub.Status, sub.SupersededBy)
		}
		res, err := st.ClaimRun(ctx, id, contract.Run{ActivityID: "11", Attempt: 1, Started: now}, 3)
		if err != nil || res.Claim != ClaimSuperseded || res.SupersededBy != "newest" {
			t.Errorf("claim %s: %+v %v, want superseded", id, res, err)
		}
	}
	for _, id := range []string{"running", "other-assignment", "other-student", "regrade", "newest"} {
		if sub, _ := st.Submission(ctx, id); sub.Status != contract.StatusPending {
			t.Errorf("%s: status %s, want pending", id, sub.Status)
		}
	}
	// Superseding again finds nothing new.
	if again, err := st.SupersedeEarlier(ctx, newest, now); err != nil || len(again) != 0 {
		t.Errorf("again: %v %v", again, err)
	}
}
