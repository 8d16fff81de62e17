// Command starter is gradeflow's command-line client for staff and scripts:
// it loads assignments, submits a directory of files as a submission, waits
// for grades, and grades the bundled examples end to end.
//
//	starter assignment DIR                      load DIR/assignment.json, DIR/input/, DIR/expected/
//	starter submit -assignment A -student S [-id ID] [-wait] DIR
//	starter regrade ID                          grade a submission's files again as ID-r<N>
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
)

// Config is the starter's connection configuration, read once from env and flags.
type Config struct {
	TemporalAddress   string
	TemporalNamespace string
	MongoURI          string
	MongoDB           string
	Timeout           time.Duration
}

const usage = `usage:
  starter [flags] assignment DIR
  starter [flags] submit -assignment A -student S [-id ID] [-wait] DIR
  starter [flags] regrade ID
  starter [flags] status ID
  starter [flags] examples [-expect FILE] [-student S] DIR
flags:`

func main() {
	cfg, args, err := loadConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
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
	defer stop()
	err = run(ctx, cfg, args, log)
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

func loadConfig(args []string) (Config, []string, error) {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	var cfg Config
	fs.StringVar(&cfg.TemporalAddress, "temporal", env("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&cfg.TemporalNamespace, "namespace", env("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&cfg.MongoURI, "mongo", env("MONGODB_URI", "mongodb://127.0.0.1:27017"), "MongoDB URI (MONGODB_URI)")
	fs.StringVar(&cfg.MongoDB, "db", env("GRADEFLOW_DB", "gradeflow"), "MongoDB database (GRADEFLOW_DB)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up waiting for grades after this long")
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return Config{}, nil, errors.New("starter: a command is required")
	}
	return cfg, fs.Args(), nil
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
