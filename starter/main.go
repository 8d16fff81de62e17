// Command starter is gradeflow's command-line client for staff and scripts:
// it loads assignments, submits a directory of files as a submission, waits
// for grades, and grades the bundled examples end to end.
//
//	starter assignment DIR                      load DIR/assignment.json, DIR/input/, DIR/expected/
//	starter submit -assignment A -student S [-id ID] [-wait] DIR
//	starter regrade ID                          grade a submission's files again as ID-r<N>
//	starter regrade-all -assignment A [-all] [-wait] [-id RUN]
//	                                            regrade an assignment (its workflow starts the regrades)
//	starter status ID
//	starter examples [-expect FILE] DIR         load the assignment in DIR and grade DIR/submissions/*
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/config"
)

// Config is the starter's connection configuration, read once from env and flags.
type Config struct {
	Temporal config.Temporal
	Mongo    config.Mongo
	Timeout  time.Duration // how long -wait and examples wait for grades
	// WebhookPrivate lets assignments name webhook receivers on private addresses.
	WebhookPrivate bool
	RuntimeImages  []string // runtime images assignments may name besides the default
}

const usage = `usage:
  starter [flags] assignment DIR
  starter [flags] submit -assignment A -student S [-id ID] [-wait] DIR
  starter [flags] regrade ID
  starter [flags] regrade-all -assignment A [-all] [-wait] [-id rg-...]
  starter [flags] dataset NAME FILE
  starter [flags] status ID
  starter [flags] examples [-expect FILE] [-student S] DIR
flags:`

func main() {
	cfg, args, err := loadConfig(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, args, log)
	stop()
	_ = log.Sync()
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(1)
	}
}

// loadConfig reads the connection settings from args and the environment
// and returns the command and its arguments.
func loadConfig(args []string, lookup func(string) (string, bool)) (Config, []string, error) {
	var cfg Config
	l := config.New("starter", lookup)
	fs := l.FlagSet()
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	l.Temporal(&cfg.Temporal)
	l.Mongo(&cfg.Mongo)
	l.Duration(&cfg.Timeout, "timeout", "GRADEFLOW_STARTER_TIMEOUT", 10*time.Minute, "give up waiting for grades after this long")
	l.WebhookAllowPrivate(&cfg.WebhookPrivate)
	l.RuntimeImages(&cfg.RuntimeImages)
	rest, err := l.Parse(args)
	if err != nil {
		return Config{}, nil, err
	}
	if len(rest) == 0 {
		fs.Usage()
		return Config{}, nil, usageError{"a command is required"}
	}
	return cfg, rest, nil
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
