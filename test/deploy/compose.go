//go:build deploytest

// Package deploy tests the compose deployment (deploy/compose) for real: it
// brings the stack up with docker-compose on this machine's Docker engine,
// grades through the API, breaks things, and takes it down again. Run it
// with `make deploy-test` (build tag deploytest); it needs the images of
// `make images deploy-images`.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// project is one docker-compose project of the test: its name, files and
// the environment its ${...} references read.
type project struct {
	root    string   // repository root; compose paths are relative to it
	name    string   // compose project name (-p)
	files   []string // compose files, relative to root
	envFile string   // --env-file, the secrets
	env     []string // extra variables: ports, workdir, network
}

// compose runs docker-compose for the project and returns its stdout; an
// error carries stderr.
func (p *project) compose(ctx context.Context, args ...string) (string, error) {
	full := []string{"-p", p.name, "--env-file", p.envFile}
	for _, f := range p.files {
		full = append(full, "-f", filepath.Join(p.root, f))
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "docker-compose", full...)
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), p.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker-compose %s: %w: %s", strings.Join(args, " "), err, tail(errb.String(), 2000))
	}
	return out.String(), nil
}

// container is what `docker inspect` says about one container of a project.
type container struct {
	ID      string
	Name    string
	Service string
	State   string // running, exited, ...
	Health  string // healthy, starting, unhealthy, or "" without a check
	Exit    int
}

// containers lists the project's containers, stopped ones included.
func (p *project) containers(ctx context.Context) ([]container, error) {
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label=com.docker.compose.project="+p.name)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(ids) == "" {
		return nil, nil
	}
	out, err := docker(ctx, append([]string{"inspect"}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		ID     string `json:"Id"`
		Name   string
		Config struct{ Labels map[string]string }
		State  struct {
			Status   string
			ExitCode int
			Health   *struct{ Status string }
		}
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, err
	}
	var cs []container
	for _, r := range raw {
		c := container{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Service: r.Config.Labels["com.docker.compose.service"],
			State: r.State.Status, Exit: r.State.ExitCode}
		if r.State.Health != nil {
			c.Health = r.State.Health.Status
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, nil
}

// ready reports whether every container is healthy, or exited 0 for
// one-shot services without a check, and describes those that are not.
func ready(cs []container) (bool, string) {
	var waiting []string
	for _, c := range cs {
		switch {
		case c.Health == "healthy":
		case c.Health == "" && c.State == "exited" && c.Exit == 0:
		default:
			waiting = append(waiting, fmt.Sprintf("%s(%s/%s exit %d)", c.Service, c.State, c.Health, c.Exit))
		}
	}
	return len(waiting) == 0 && len(cs) > 0, strings.Join(waiting, " ")
}

// waitReady waits until the project's containers are all ready and
// returns how long that took.
func (p *project) waitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		cs, err := p.containers(ctx)
		if err != nil {
			return 0, err
		}
		ok, waiting := ready(cs)
		if ok {
			return time.Since(start), nil
		}
		for _, c := range cs {
			if c.Health == "unhealthy" || (c.Health == "" && c.State == "exited" && c.Exit != 0) {
				return 0, fmt.Errorf("%s failed: %s", c.Name, waiting)
			}
		}
		last = waiting
		time.Sleep(time.Second)
	}
	return 0, fmt.Errorf("not ready after %s: %s", timeout, last)
}

// logs returns the last lines of the project's logs, for failure reports.
func (p *project) logs(ctx context.Context, services ...string) string {
	out, err := p.compose(ctx, append([]string{"logs", "--no-color", "--tail", "40"}, services...)...)
	if err != nil {
		return err.Error()
	}
	return out
}

// docker runs the docker CLI and returns its stdout.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, tail(errb.String(), 1000))
	}
	return out.String(), nil
}

// leftovers lists what docker still has of a project: containers, networks
// and volumes carrying its compose label.
func leftovers(ctx context.Context, name string) ([]string, error) {
	var left []string
	for _, kind := range [][]string{
		{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"},
	} {
		out, err := docker(ctx, append(kind, "--filter", "label=com.docker.compose.project="+name)...)
		if err != nil {
			return nil, err
		}
		for _, id := range strings.Fields(out) {
			left = append(left, kind[0]+" "+id)
		}
	}
	return left, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
