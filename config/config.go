// Package config reads a gradeflow program's settings once, from flags and
// environment variables, into the program's typed Config: each setting has
// a flag and a variable (the flag wins), secrets have a variable only, and
// a value that does not parse or is out of range is an error naming the
// variable or flag. It also builds the program's logger from its level.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Loader binds settings to flags and environment variables. Bind every
// setting, then call Parse once.
type Loader struct {
	fs     *flag.FlagSet
	lookup func(string) (string, bool)
	errs   []error
	after  []func() // run by Parse, for settings derived from parsed ones
}

// New returns a loader for program that reads variables through lookup
// (os.LookupEnv when nil).
func New(program string, lookup func(string) (string, bool)) *Loader {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &Loader{fs: flag.NewFlagSet(program, flag.ContinueOnError), lookup: lookup}
}

// FlagSet is the loader's flags, for a program's own usage text.
func (l *Loader) FlagSet() *flag.FlagSet { return l.fs }

// SetOutput sets where usage and flag errors are printed.
func (l *Loader) SetOutput(w io.Writer) { l.fs.SetOutput(w) }

// env returns the variable's value, "" when unset or empty.
func (l *Loader) env(name string) string {
	v, ok := l.lookup(name)
	if !ok {
		return ""
	}
	return v
}

func usageOf(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (" + env + ")"
}

// bind reads env with parse into the default of a flag defined by define.
func bind[T any](l *Loader, env string, def T, parse func(string) (T, error)) T {
	v := l.env(env)
	if env == "" || v == "" {
		return def
	}
	got, err := parse(v)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s: %q is not a valid value: %w", env, v, unwrapNum(err)))
		return def
	}
	return got
}

// unwrapNum drops strconv's repetition of the input from its errors.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// String binds a string setting.
func (l *Loader) String(p *string, name, env, def, usage string) {
	l.fs.StringVar(p, name, bind(l, env, def, func(s string) (string, error) { return s, nil }), usageOf(usage, env))
}

// Int binds an integer setting.
func (l *Loader) Int(p *int, name, env string, def int, usage string) {
	l.fs.IntVar(p, name, bind(l, env, def, strconv.Atoi), usageOf(usage, env))
}

// Int64 binds a 64-bit integer setting (byte counts).
func (l *Loader) Int64(p *int64, name, env string, def int64, usage string) {
	l.fs.Int64Var(p, name, bind(l, env, def, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }), usageOf(usage, env))
}

// Float binds a floating-point setting.
func (l *Loader) Float(p *float64, name, env string, def float64, usage string) {
	l.fs.Float64Var(p, name, bind(l, env, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }), usageOf(usage, env))
}

// Duration binds a duration setting ("10s", "2m").
func (l *Loader) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	l.fs.DurationVar(p, name, bind(l, env, def, time.ParseDuration), usageOf(usage, env))
}

// Bool binds a boolean setting ("true", "false", "1", "0").
func (l *Loader) Bool(p *bool, name, env string, def bool, usage string) {
	l.fs.BoolVar(p, name, bind(l, env, def, strconv.ParseBool), usageOf(usage, env))
}

// Secret binds a setting read from the environment only: flags show in ps.
func (l *Loader) Secret(p *string, env string) { *p = l.env(env) }

// Check records a validation error unless ok. Call it after Parse, then
// Err.
func (l *Loader) Check(ok bool, format string, args ...any) {
	if !ok {
		l.errs = append(l.errs, fmt.Errorf(format, args...))
	}
}

// Parse parses args and returns the arguments left after the flags. Errors
// of the environment come first; flag.ErrHelp is returned as it is.
func (l *Loader) Parse(args []string) ([]string, error) {
	if err := l.fs.Parse(args); err != nil {
		return nil, err
	}
	for _, f := range l.after {
		f()
	}
	return l.fs.Args(), l.Err()
}

// Err returns every error recorded so far, joined.
func (l *Loader) Err() error { return errors.Join(l.errs...) }

// Temporal is how a program reaches Temporal.
type Temporal struct {
	Address   string // TEMPORAL_ADDRESS
	Namespace string // TEMPORAL_NAMESPACE
}

// Temporal binds the standard TEMPORAL_* settings.
func (l *Loader) Temporal(t *Temporal) {
	l.String(&t.Address, "temporal", "TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port")
	l.String(&t.Namespace, "namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
}

// Mongo is how a program reaches MongoDB.
type Mongo struct {
	URI string // MONGODB_URI
	DB  string // GRADEFLOW_DB
}

// Mongo binds MONGODB_URI and GRADEFLOW_DB.
func (l *Loader) Mongo(m *Mongo) {
	l.String(&m.URI, "mongo", "MONGODB_URI", "mongodb://127.0.0.1:27017", "MongoDB URI")
	l.String(&m.DB, "db", "GRADEFLOW_DB", "gradeflow", "MongoDB database")
}

// WebhookAllowPrivate binds GRADEFLOW_WEBHOOK_ALLOW_PRIVATE: whether
// webhook URLs may point at loopback, link-local, private or reserved
// addresses. Off by default; a course whose receiver sits on its own
// private network turns it on.
func (l *Loader) WebhookAllowPrivate(p *bool) {
	l.Bool(p, "webhook-allow-private", "GRADEFLOW_WEBHOOK_ALLOW_PRIVATE", false,
		"let webhook URLs reach loopback, link-local and private addresses")
}

// Logger builds a program's JSON logger at level ("debug", "info", "warn"
// or "error"), unsampled.
func Logger(level string) (*zap.Logger, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("GRADEFLOW_LOG_LEVEL: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = lvl
	zc.Sampling = nil
	l, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l, nil
}

// RuntimeImages binds GRADEFLOW_RUNTIME_IMAGES: the runtime images, besides
// the default, that assignments may name (comma-separated). The API
// refuses an assignment naming another; execute workers refuse to run one.
func (l *Loader) RuntimeImages(p *[]string) {
	var raw string
	l.String(&raw, "runtime-images", "GRADEFLOW_RUNTIME_IMAGES", "", "runtime images assignments may name besides the default, comma-separated")
	l.after = append(l.after, func() {
		*p = nil
		for _, im := range strings.Split(raw, ",") {
			if im = strings.TrimSpace(im); im != "" {
				*p = append(*p, im)
			}
		}
	})
}
