package node

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"meshell/manager"
	"meshell/mesh"
	"meshell/node/jobs"
	"meshell/protocol"
)

// The job plane lives in node/jobs; these are its doors for the shell.
type (
	DispatchRequest = jobs.DispatchRequest
	DispatchResult  = jobs.DispatchResult
	JobResult       = jobs.JobResult
	JobRecord       = jobs.JobRecord
	JobStats        = jobs.JobStats
	JobLimits       = jobs.Limits
	KindFunc        = jobs.KindFunc
	RunConfig       = jobs.RunConfig
	RunRequest      = jobs.RunRequest
	RunReply        = jobs.RunReply
	DeclaredKind    = jobs.DeclaredKind
	Strategy        = jobs.Strategy
)

// Names and defaults of the job plane.
const (
	RunKind              = jobs.RunKind  // the reserved kind of !run
	SlotsTag             = jobs.SlotsTag // the tag a worker's slot count travels in
	KindsTag             = jobs.KindsTag // the tag a worker's declared kinds travel in
	DefaultMaxJobTimeout = jobs.DefaultMaxJobTimeout
)

// ErrNoWorker is wrapped by the error Dispatch returns when no alive
// member matches the filter.
var ErrNoWorker = jobs.ErrNoWorker

// ErrStreamLimit is emit's error for a chunk past what one job may stream.
var ErrStreamLimit = jobs.ErrStreamLimit

// DefaultMaxSlots is the slot bound when the owner sets none: 4 per CPU.
func DefaultMaxSlots() int { return jobs.DefaultMaxSlots() }

// ParseStrategy reads a strategy name ("" is the default, least-connections).
func ParseStrategy(s string) (Strategy, error) { return jobs.ParseStrategy(s) }

// Strategies lists the strategy names, for help and completion.
func Strategies() []string { return jobs.Strategies() }

// DefaultFilter is the tag filter of a job that names none: role=worker.
func DefaultFilter() map[string]string { return jobs.DefaultFilter() }

// FilterString renders a filter as sorted k=v pairs joined by commas.
func FilterString(filter map[string]string) string { return jobs.FilterString(filter) }

// ParseKindSpec reads one --kind NAME=COMMAND (NAME!=COMMAND: idempotent).
func ParseKindSpec(spec string) (DeclaredKind, error) { return jobs.ParseKindSpec(spec) }

// SplitWords splits a command line into words, with shell-like quoting.
func SplitWords(s string) ([]string, error) { return jobs.SplitWords(s) }

// Dispatch runs one job on a worker chosen by req.Strategy among the alive
// members whose tags match req.Tags; see jobs.Jobs.Dispatch.
func (n *Node) Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error) {
	return n.jobs.Dispatch(ctx, req)
}

// Run runs req.Command on every target at once (!run); see jobs.Jobs.Run.
func (n *Node) Run(ctx context.Context, req RunRequest) ([]RunReply, error) {
	return n.jobs.Run(ctx, req)
}

// RecentJobs returns the last jobs this node dispatched, oldest first.
func (n *Node) RecentJobs() []JobRecord { return n.jobs.RecentJobs() }

// Workers lists the members whose tags match filter (role=worker when
// empty), in any state, with this dispatcher's counts.
func (n *Node) Workers(filter map[string]string) []WorkerInfo {
	ws := n.jobs.Workers(filter)
	out := make([]WorkerInfo, len(ws))
	for i, w := range ws {
		out[i] = WorkerInfo{Alias: w.Alias, Addr: w.Addr, State: State(w.State), Self: w.Self, Tags: w.Tags, Slots: w.Slots, InFlight: w.InFlight, Done: w.Done}
	}
	return out
}

// WorkerInfo is a worker as this node's dispatcher sees it.
type WorkerInfo struct {
	Alias    string
	Addr     string
	State    State
	Self     bool
	Tags     map[string]string
	Slots    int    // as advertised in its slots tag
	InFlight int    // jobs this node has on it now
	Done     uint64 // attempts of this node's jobs it answered
}

// jobStats returns the job counters.
func (n *Node) jobStats() JobStats { return n.jobs.Stats() }

// Kinds lists the job kinds this node runs and those the live members
// declare, sorted: what a dispatch here may name.
func (n *Node) Kinds() []string { return n.jobs.Kinds() }

// RegisterKind makes this node run jobs of kind name with fn.
func (n *Node) RegisterKind(name string, fn KindFunc) error { return n.jobs.RegisterKind(name, fn) }

// SetJobQueue sets how many accepted jobs may wait for a slot.
func (n *Node) SetJobQueue(k int) error { return n.jobs.SetJobQueue(k) }

// drainJobs stops taking new jobs and waits for running ones until ctx
// ends; see jobs.Jobs.Drain. The node stays draining until resumeJobs.
func (n *Node) drainJobs(ctx context.Context) { n.jobs.Drain(ctx) }

// resumeJobs undoes drainJobs.
func (n *Node) resumeJobs() { n.jobs.Resume() }

// SetSlots changes how many jobs this node runs at once, at most its
// owner's MaxSlots (the remote scale command comes here too), and gossips
// the new count as the slots tag.
func (n *Node) SetSlots(k int) error {
	if err := n.jobs.SetSlots(k); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.SetTags(ctx, n.self.Load().Tags) // SetTags sets the slots tag
	if errors.Is(err, ErrNotRunning) {
		return nil // a closed node gossips nothing; the local count changed
	}
	return err
}

// host is the node as its job plane sees it (jobs.Host).
type host Node

var _ jobs.Host = (*host)(nil)

func (h *host) Alias() string               { return (*Node)(h).Alias() }
func (h *host) Cluster() string             { return h.cfg.Cluster }
func (h *host) Running() bool               { return (*Node)(h).Running() }
func (h *host) Members() *manager.Snapshot  { return h.snap.Load() }
func (h *host) Connected(alias string) bool { return h.mesh.Connected(alias) }

func (h *host) Send(alias string, m protocol.Message) error {
	switch err := h.mesh.SendConnected(alias, m); {
	case errors.Is(err, mesh.ErrNotConnected):
		return sendError{err, jobs.ErrNotConnected}
	case errors.Is(err, mesh.ErrQueueFull):
		return sendError{err, jobs.ErrQueueFull}
	default:
		return err
	}
}

// sendError keeps the mesh's words and is the job plane's error.
type sendError struct{ mesh, jobs error }

func (e sendError) Error() string        { return e.mesh.Error() }
func (e sendError) Is(target error) bool { return target == e.jobs }

func (h *host) Sign(op string, args []string, target string) (*protocol.Signature, error) {
	s, ok, err := (*Node)(h).signFor(op, args, target)
	if !ok {
		return nil, err
	}
	return signatureOf(s), nil
}

func (h *host) Verify(op string, args []string, sig *protocol.Signature) error {
	return (*Node)(h).verifySigned(signedOf(op, args, sig))
}

func (h *host) Warn(kind string, fields logrus.Fields, msg string) { h.warn.Warn(kind, fields, msg) }
