// Package sandbox runs student code in sandboxed, single-use containers of
// gradeflow's Hadoop runtime image (built from docker/image): no network, a read-only root, a size-capped tmpfs for scratch
// space, memory, pids and cpu limits, no capabilities, a non-root user, and
// a wall-clock limit enforced from outside the container.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerimage "github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
)

// Labels put on every grading container, so a worker can find its orphans.
const (
	LabelManaged    = "gradeflow.managed"
	LabelSubmission = "gradeflow.submission"
	LabelWorkflow   = "gradeflow.workflow"
	LabelActivity   = "gradeflow.activity"
	LabelAttempt    = "gradeflow.attempt"
	LabelKind       = "gradeflow.kind"
	// LabelNamespace carries the ID of the Temporal namespace whose worker
	// made the container. Namespace IDs are unique per Temporal cluster, so
	// stacks that share a Docker engine (a test stack beside `make run`, a
	// compose deployment beside a second project) judge only their own
	// containers.
	LabelNamespace = "gradeflow.namespace"
	// LabelOwner carries the Temporal identity of the worker that keeps a
	// long-lived container (a warm checker, kind KindChecker): it is live
	// while that worker polls.
	LabelOwner = "gradeflow.owner"
)

// KindChecker is the LabelKind of a warm sanity checker.
const KindChecker = "checker"

// User is the uid:gid a container starts as: root, but with only
// CAP_SETUID and CAP_SETGID (Capabilities), no-new-privileges and a
// read-only root. The image's runner drops to uid 999 at once and runs
// student code as uid 1000 with no capabilities, so student code can
// neither signal, trace nor read the runner, nor reach its result channel.
const User = "0:0"

// StudentUID is the uid student code runs as inside the container.
const StudentUID = 1000

// Capabilities are the only capabilities a container keeps: what the
// runner needs to switch to the student's uid.
var Capabilities = []string{"CAP_SETUID", "CAP_SETGID"}

// CoreDumps are off, and no single file may grow beyond FileSizeLimit
// (or the scratch space, if that is smaller).
const FileSizeLimit = 1 << 30

// Mount is a host directory bind-mounted read-only into the container.
type Mount struct {
	Source string // absolute host path
	Target string // absolute container path
}

// Spec describes one container run.
type Spec struct {
	Name         string // container name; an existing container of that name is replaced
	Image        string
	Entrypoint   []string // if set, replaces the image's entrypoint (the runner)
	Cmd          []string
	Env          []string
	Mounts       []Mount
	Labels       map[string]string
	MemoryBytes  int64
	NanoCPUs     int64
	PidsLimit    int64
	ScratchBytes int64 // size of the /scratch tmpfs; it counts against MemoryBytes
	StdoutCap    int64 // bytes of stdout kept; the rest is discarded and Truncated set
	// StdoutTee, if set, also gets every byte of stdout that is kept, as
	// it arrives (the execute step reads each test's results from it while
	// the job still runs). Its writes must not block for long.
	StdoutTee io.Writer
	StderrCap int64 // bytes of stderr kept, half from the start and half from the end
	TimeLimit time.Duration
	// Tick, if set, is called about every TickEvery while the container runs
	// (the execute activity heartbeats from it).
	Tick      func(elapsed time.Duration)
	TickEvery time.Duration
	// Stdin keeps the container's stdin open for the worker to write to
	// (StartServer sets it).
	Stdin bool
}

// Result is what a finished container left behind.
type Result struct {
	ExitCode        int
	OOMKilled       bool
	TimedOut        bool // killed by the wall-clock limit
	Stdout          []byte
	StdoutTruncated bool
	Stderr          string
	Elapsed         time.Duration // from start to exit
	// ImageID is the content ID (sha256 digest) of the image the container
	// ran, from the engine's record of it; empty if that could not be read.
	ImageID string
}

// Runner starts containers on one Docker engine.
type Runner struct {
	cli *client.Client
}

// New connects to the Docker engine named by the standard DOCKER_* env vars,
// negotiating the API version so that older engines (20.10) work.
func New() (*Runner, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Runner{cli: cli}, nil
}

// Close releases the client's connections.
func (r *Runner) Close() error { return r.cli.Close() }

// Ping checks that the engine answers.
func (r *Runner) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}

// ImageExists reports whether image is present on the engine.
func (r *Runner) ImageExists(ctx context.Context, image string) (bool, error) {
	_, err := r.cli.ImageInspect(ctx, image)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", image, err)
	}
	return true, nil
}

// ImageID returns the content ID (sha256 digest) of a local image.
func (r *Runner) ImageID(ctx context.Context, image string) (string, error) {
	info, err := r.cli.ImageInspect(ctx, image)
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", image, err)
	}
	return info.ID, nil
}

// Run creates, starts and waits for a container, then removes it. It kills
// the container when ctx is canceled or TimeLimit passes; in the first case
// it returns ctx's error, in the second a Result with TimedOut set. The
// container is removed on every path, even when ctx is canceled.
func (r *Runner) Run(ctx context.Context, spec Spec) (Result, error) {
	// Cleanup must survive ctx's cancellation: that is when it matters most.
	bg := context.WithoutCancel(ctx)
	id, err := r.create(ctx, spec)
	if err != nil {
		return Result{}, err
	}
	defer r.remove(bg, id)

	hijack, err := r.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return Result{}, fmt.Errorf("attach container: %w", err)
	}
	defer hijack.Close()
	stdout := &capBuffer{max: spec.StdoutCap, tee: spec.StdoutTee}
	stderr := newHeadTail(spec.StderrCap)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(stdout, stderr, hijack.Reader)
	}()

	waitCtx, cancelWait := context.WithCancel(bg)
	defer cancelWait()
	waitC, waitErrC := r.cli.ContainerWait(waitCtx, id, container.WaitConditionNextExit)

	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return Result{}, fmt.Errorf("start container: %w", err)
	}
	started := time.Now()

	var limit <-chan time.Time
	if spec.TimeLimit > 0 {
		t := time.NewTimer(spec.TimeLimit)
		defer t.Stop()
		limit = t.C
	}
	var tick <-chan time.Time
	if spec.Tick != nil && spec.TickEvery > 0 {
		t := time.NewTicker(spec.TickEvery)
		defer t.Stop()
		tick = t.C
	}

	res := Result{}
	var ctxErr error
	for done := false; !done; {
		select {
		case w := <-waitC:
			res.ExitCode = int(w.StatusCode)
			if w.Error != nil {
				return Result{}, fmt.Errorf("wait container: %s", w.Error.Message)
			}
			done = true
		case err := <-waitErrC:
			return Result{}, fmt.Errorf("wait container: %w", err)
		case <-limit:
			res.TimedOut = true
			r.kill(bg, id)
			limit = nil
		case <-ctx.Done():
			ctxErr = ctx.Err()
			r.kill(bg, id)
			// Keep waiting for the exit, briefly, so the container is gone
			// before we report; remove(force) covers a slow engine.
			t := time.NewTimer(5 * time.Second)
			select {
			case <-waitC:
			case <-waitErrC:
			case <-t.C:
			}
			t.Stop()
			return Result{}, ctxErr
		case <-tick:
			spec.Tick(time.Since(started))
		}
	}
	res.Elapsed = time.Since(started)

	// The attach stream ends at exit; don't let a wedged engine hold us.
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		hijack.Close()
		<-copied
	}
	// Even a clean exit may hide an out-of-memory kill: the kernel may kill
	// a student's mapper while the runner survives to report the failure.
	// The same record names the image the job really ran.
	if info, err := r.cli.ContainerInspect(bg, id); err == nil {
		res.ImageID = info.Image
		if info.State != nil {
			res.OOMKilled = info.State.OOMKilled
		}
	}
	res.Stdout = stdout.buf
	res.StdoutTruncated = stdout.truncated
	res.Stderr = stderr.String()
	return res, nil
}

func (r *Runner) create(ctx context.Context, spec Spec) (string, error) {
	cfg := &container.Config{
		Image:           spec.Image,
		Entrypoint:      spec.Entrypoint,
		Cmd:             spec.Cmd,
		Env:             spec.Env,
		User:            User,
		Labels:          spec.Labels,
		WorkingDir:      "/scratch",
		NetworkDisabled: true,
		AttachStdout:    true,
		AttachStderr:    true,
		AttachStdin:     spec.Stdin,
		OpenStdin:       spec.Stdin,
	}
	pids := spec.PidsLimit
	init := true
	fsize := int64(FileSizeLimit)
	if spec.ScratchBytes > 0 && spec.ScratchBytes < fsize {
		fsize = spec.ScratchBytes
	}
	mounts := make([]mount.Mount, 0, len(spec.Mounts))
	for _, m := range spec.Mounts {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: true})
	}
	host := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		CapAdd:         Capabilities,
		Init:           &init, // an init reaps orphans and forwards signals
		SecurityOpt:    []string{"no-new-privileges"},
		LogConfig:      container.LogConfig{Type: "none"},
		Mounts:         mounts,
		Tmpfs: map[string]string{
			"/scratch": fmt.Sprintf("rw,exec,nosuid,nodev,mode=1777,size=%d", spec.ScratchBytes),
			"/tmp":     "rw,noexec,nosuid,nodev,mode=1777,size=67108864",
		},
		Resources: container.Resources{
			Memory:     spec.MemoryBytes,
			MemorySwap: spec.MemoryBytes, // no swap
			NanoCPUs:   spec.NanoCPUs,
			PidsLimit:  &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: 4096, Hard: 4096},
				{Name: "core", Soft: 0, Hard: 0},
				{Name: "fsize", Soft: fsize, Hard: fsize},
			},
		},
	}
	for attempt := 0; ; attempt++ {
		resp, err := r.cli.ContainerCreate(ctx, cfg, host, nil, nil, spec.Name)
		if err == nil {
			return resp.ID, nil
		}
		// A container of this name is left from an earlier try of the same
		// attempt (a crashed worker): replace it.
		if errdefs.IsConflict(err) && attempt == 0 && spec.Name != "" {
			r.remove(ctx, spec.Name)
			continue
		}
		return "", fmt.Errorf("create container: %w", err)
	}
}

func (r *Runner) kill(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = r.cli.ContainerKill(ctx, id, "KILL") // it may have exited already
}

// remove is Remove for cleanup paths: bounded in time, best effort (the
// janitor catches what it misses).
func (r *Runner) remove(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = r.Remove(ctx, id)
}

// Managed is a grading container found on the engine.
type Managed struct {
	ID      string
	Name    string
	Labels  map[string]string
	Created time.Time
	State   string
}

// OfNamespace reports whether the container belongs to the stack whose
// Temporal namespace has the given ID. A container without the namespace
// label predates the label and counts as every stack's, as it did before.
func (m Managed) OfNamespace(id string) bool {
	ns, ok := m.Labels[LabelNamespace]
	return !ok || ns == id
}

// ListManaged returns every container gradeflow created on this engine,
// running or not.
func (r *Runner) ListManaged(ctx context.Context) ([]Managed, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true")),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Managed, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Managed{ID: c.ID, Name: name, Labels: c.Labels, Created: time.Unix(c.Created, 0), State: c.State})
	}
	return out, nil
}

// Remove kills and removes a container. A container that is already gone is
// not an error.
func (r *Runner) Remove(ctx context.Context, id string) error {
	err := r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// PullImage pulls image from its registry, for hosts (such as a Kubernetes
// pod's own engine) that start without it.
func (r *Runner) PullImage(ctx context.Context, image string) error {
	rc, err := r.cli.ImagePull(ctx, image, dockerimage.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", image, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("pull image %s: %w", image, err)
	}
	return nil
}
