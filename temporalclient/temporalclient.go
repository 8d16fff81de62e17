// Package temporalclient connects gradeflow's programs to Temporal, with
// the SDK logging through the program's zap logger.
package temporalclient

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Config says how to reach Temporal. Programs fill it from the standard
// TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE environment variables.
type Config struct {
	HostPort  string
	Namespace string
	Identity  string // worker identity shown in the Web UI; empty for the SDK's default
}

func (c Config) options(zl *zap.Logger) client.Options {
	return client.Options{
		HostPort:  c.HostPort,
		Namespace: c.Namespace,
		Identity:  c.Identity,
		Logger:    NewZapAdapter(zl),
	}
}

// Dial connects to Temporal, failing when it does not answer.
func Dial(ctx context.Context, cfg Config, zl *zap.Logger) (client.Client, error) {
	c, err := client.DialContext(ctx, cfg.options(zl))
	if err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", cfg.HostPort, err)
	}
	return c, nil
}

// NewLazy returns a client that connects on first use, so that a program
// can start (and report itself not ready) while Temporal is down.
func NewLazy(cfg Config, zl *zap.Logger) (client.Client, error) {
	c, err := client.NewLazyClient(cfg.options(zl))
	if err != nil {
		return nil, fmt.Errorf("temporal client %s: %w", cfg.HostPort, err)
	}
	return c, nil
}

// zapAdapter lets the Temporal SDK log through zap. The SDK's own keys
// (WorkflowID, TaskQueue, ...) are written in snake_case like every other
// key of gradeflow's logs.
type zapAdapter struct{ zl *zap.SugaredLogger }

// NewZapAdapter returns a Temporal logger that writes to zl.
func NewZapAdapter(zl *zap.Logger) log.Logger {
	return &zapAdapter{zl: zl.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (a *zapAdapter) Debug(msg string, keyvals ...any) { a.zl.Debugw(msg, snakeKeys(keyvals)...) }
func (a *zapAdapter) Info(msg string, keyvals ...any)  { a.zl.Infow(msg, snakeKeys(keyvals)...) }
func (a *zapAdapter) Warn(msg string, keyvals ...any)  { a.zl.Warnw(msg, snakeKeys(keyvals)...) }
func (a *zapAdapter) Error(msg string, keyvals ...any) { a.zl.Errorw(msg, snakeKeys(keyvals)...) }

// With returns a logger with keyvals added to every entry.
func (a *zapAdapter) With(keyvals ...any) log.Logger {
	return &zapAdapter{zl: a.zl.With(snakeKeys(keyvals)...)}
}

// snakeKeys returns keyvals with its string keys in snake_case.
func snakeKeys(keyvals []any) []any {
	out := make([]any, len(keyvals))
	copy(out, keyvals)
	for i := 0; i < len(out)-1; i += 2 {
		if k, ok := out[i].(string); ok {
			out[i] = SnakeCase(k)
		}
	}
	return out
}

// SnakeCase turns a CamelCase key into snake_case: "WorkflowID" becomes
// "workflow_id", "TaskQueue" "task_queue". A snake_case key is unchanged.
func SnakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		upper := unicode.IsUpper(r)
		if upper && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
