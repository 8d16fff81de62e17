package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RateLimitsCollection holds the rate limiter's reservations. Keeping them
// in MongoDB lets several API replicas share one limit per key.
const RateLimitsCollection = "ratelimits"

// RateLimit is a token bucket: Burst tokens at most, refilled at PerMinute
// tokens a minute. A zero PerMinute or Burst means no limit.
type RateLimit struct {
	PerMinute float64
	Burst     int
}

// ErrContended is returned when every attempt to take a token lost a race
// with another request for the same key.
var ErrContended = errors.New("rate limit contended")

// TakeToken takes one token from key's bucket as of now. It reports
// whether one was available and, when none was, how long until one is.
//
// Time is cut into slots of one refill interval T. Each granted token
// reserves a slot of its own: the first free one at or after the current
// slot c, above every slot reserved before. A token is granted when that
// slot is below c + Burst, so at most Burst reservations lie ahead of now
// and they drain at one per T: a token bucket with slot granularity, the
// discrete form of GCRA. The reservation is an insert keyed by key and
// slot, and a unique key is the one write that MongoDB, and the
// FerretDB-based dev server too, make atomic: two requests (on any
// replicas) racing for a slot get one each, or one of them retries on the
// next. Reservations behind the current slot are deleted as tokens are
// taken, so a key keeps at most Burst documents.
func (s *Store) TakeToken(ctx context.Context, key string, l RateLimit, now time.Time) (ok bool, retryAfter time.Duration, err error) {
	if l.PerMinute <= 0 || l.Burst <= 0 {
		return true, 0, nil
	}
	col := s.db.Collection(RateLimitsCollection)
	step := max(time.Duration(float64(time.Minute)/l.PerMinute).Microseconds(), 1)
	nowUs := now.UnixMicro()
	cur := nowUs / step
	for range 32 {
		var last struct {
			Slot int64 `bson:"slot"`
		}
		err := col.FindOne(ctx, bson.D{{Key: "key", Value: key}},
			options.FindOne().SetSort(bson.D{{Key: "slot", Value: -1}})).Decode(&last)
		if errors.Is(err, mongo.ErrNoDocuments) {
			last.Slot = cur - 1
		} else if err != nil {
			return false, 0, fmt.Errorf("read rate limit %s: %w", key, err)
		}
		slot := max(last.Slot+1, cur)
		if slot >= cur+int64(l.Burst) {
			free := (slot - int64(l.Burst) + 1) * step // when the current slot reaches slot−Burst+1
			return false, time.Duration(free-nowUs) * time.Microsecond, nil
		}
		_, err = col.InsertOne(ctx, bson.D{
			{Key: "_id", Value: fmt.Sprintf("%s/%d", key, slot)},
			{Key: "key", Value: key},
			{Key: "slot", Value: slot},
		})
		if mongo.IsDuplicateKeyError(err) {
			continue // another request reserved it first
		}
		if err != nil {
			return false, 0, fmt.Errorf("reserve rate limit %s: %w", key, err)
		}
		if _, err := col.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "slot", Value: bson.D{{Key: "$lt", Value: cur}}}}); err != nil {
			return false, 0, fmt.Errorf("expire rate limit %s: %w", key, err)
		}
		return true, 0, nil
	}
	return false, 0, fmt.Errorf("take token %s: %w", key, ErrContended)
}
