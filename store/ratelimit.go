package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// RateLimitsCollection holds one small document per rate-limited key (a
// student). Keeping the buckets in MongoDB lets several API replicas share
// them. The documents are bounded by the number of keys, so they are not
// expired.
const RateLimitsCollection = "ratelimits"

// RateLimit is a token bucket: Burst tokens at most, refilled at PerMinute
// tokens a minute.
type RateLimit struct {
	PerMinute float64
	Burst     int
}

// interval is the time one token takes to refill.
func (l RateLimit) interval() time.Duration {
	return time.Duration(float64(time.Minute) / l.PerMinute)
}

// ErrContended is returned when a bucket changed under every attempt to
// take a token from it.
var ErrContended = errors.New("rate limit bucket contended")

// TakeToken takes one token from key's bucket as of now. It reports
// whether one was available and, when none was, how long until one is.
//
// The bucket is kept as GCRA's theoretical arrival time (TAT): the time at
// which the bucket would be full again. Taking a token moves it one
// interval later; a token is available when the new TAT is at most Burst
// intervals ahead of now. Each take is a compare-and-swap on the stored
// TAT (FerretDB has no pipeline updates), so concurrent takes on several
// replicas never hand out more than the bucket holds.
func (s *Store) TakeToken(ctx context.Context, key string, l RateLimit, now time.Time) (ok bool, retryAfter time.Duration, err error) {
	if l.PerMinute <= 0 || l.Burst <= 0 {
		return true, 0, nil
	}
	col := s.db.Collection(RateLimitsCollection)
	step := l.interval()
	capacity := time.Duration(l.Burst) * step
	nowUs := now.UnixMicro()
	for range 16 {
		var doc struct {
			TAT int64 `bson:"tat_us"`
		}
		err := col.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&doc)
		found := err == nil
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return false, 0, fmt.Errorf("read rate limit %s: %w", key, err)
		}
		tat := max(doc.TAT, nowUs)
		next := tat + step.Microseconds()
		if ahead := time.Duration(next-nowUs) * time.Microsecond; ahead > capacity {
			return false, ahead - capacity, nil
		}
		if !found {
			_, err := col.InsertOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "tat_us", Value: next}})
			if mongo.IsDuplicateKeyError(err) {
				continue // another request created it first
			}
			if err != nil {
				return false, 0, fmt.Errorf("create rate limit %s: %w", key, err)
			}
			return true, 0, nil
		}
		res, err := col.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: key}, {Key: "tat_us", Value: doc.TAT}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "tat_us", Value: next}}}})
		if err != nil {
			return false, 0, fmt.Errorf("update rate limit %s: %w", key, err)
		}
		if res.MatchedCount == 1 {
			return true, 0, nil
		}
	}
	return false, 0, fmt.Errorf("take token %s: %w", key, ErrContended)
}
