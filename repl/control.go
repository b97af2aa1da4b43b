package repl

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"meshell/node"
	"meshell/protocol"
)

// The control plane: commands addressed to nodes themselves, one or all,
// each answered per node with an acknowledgement, an error or silence.
func init() {
	timeoutFlag := Flag{Name: "timeout", Kind: FlagDuration, Usage: "how long to wait for each node's acknowledgement (default 5s)"}
	allFlag := Flag{Name: "all", Kind: FlagBool, Usage: "every live member, this node included"}
	target := func(s *Shell, i int) []string {
		if i == 0 {
			return s.aliases()
		}
		return nil
	}
	commands = append(commands, []*Command{
		{
			Name: "!ping", Group: "control", Args: "ALIAS | --all", Max: 1,
			Summary:  "round-trip time to a node, or to every node",
			Flags:    []Flag{allFlag, flagJSON, timeoutFlag},
			Example:  "!ping --all",
			Complete: target,
			Run:      runPing,
		},
		{
			Name: "!status", Group: "control", Args: "ALIAS | --all", Max: 1, Listing: true,
			Summary:  "version, uptime, members seen, slots, jobs, goroutines, RSS and tags of nodes",
			Flags:    []Flag{allFlag, flagJSON, timeoutFlag},
			Example:  "!status --all --json",
			Complete: target,
			Run:      runStatus,
		},
		{
			Name: "!scale", Group: "control", Args: "ALIAS|--all N", Min: 1, Max: 2,
			Summary:   "set the number of worker slots of nodes (running jobs are not disturbed)",
			Flags:     []Flag{allFlag, timeoutFlag},
			Example:   "!scale worker1 8",
			Complete:  target,
			Run:       runScale,
			NoHistory: true,
		},
		{
			Name: "!shutdown", Group: "control", Args: "ALIAS | --all", Max: 1,
			Summary:   "drain and stop nodes: jobs finish or fail over, the node leaves and its process exits 0",
			Help:      "--now skips the drain. With --all this node shuts down last.",
			Flags:     []Flag{allFlag, {Name: "now", Kind: FlagBool, Usage: "do not wait for running jobs"}, timeoutFlag},
			Complete:  target,
			Run:       runShutdown,
			NoHistory: true,
		},
		{
			Name: "!restart", Group: "control", Args: "ALIAS", Min: 1, Max: 1,
			Summary:   "a node leaves, reconnects through the members it knew and comes back at a higher incarnation",
			Flags:     []Flag{timeoutFlag},
			Complete:  target,
			Run:       runRestart,
			NoHistory: true,
		},
		{
			Name: "!config", Group: "control", Args: "show | set KEY VALUE", Min: 1, Max: 3,
			Summary: "show or change runtime tunables, here or on every node (--all)",
			Help:    "Keys: " + strings.Join(node.ConfigKeys(), ", ") + ".",
			Flags:   []Flag{allFlag, flagJSON, timeoutFlag},
			Example: "!config set probe-interval 300ms --all",
			Complete: func(s *Shell, i int) []string {
				switch i {
				case 0:
					return []string{"show", "set"}
				case 1:
					return node.ConfigKeys()
				}
				return nil
			},
			Run:       runConfig,
			NoHistory: true,
		},
	}...)
}

// targets resolves ALIAS or --all into member aliases.
func (s *Shell) targets(a *Args, pos int) ([]string, error) {
	snap := s.Node.Members()
	if a.Bool("all") {
		if len(a.Pos) > pos {
			return nil, fmt.Errorf("give an alias or --all, not both")
		}
		var out []string
		for _, e := range snap.Entries {
			if e.State == protocol.StateAlive || e.State == protocol.StateSuspect {
				out = append(out, e.Alias)
			}
		}
		return out, nil
	}
	if len(a.Pos) <= pos {
		return nil, fmt.Errorf("name a node or use --all")
	}
	alias := a.Pos[pos]
	if _, ok := snap.Get(alias); !ok {
		return nil, fmt.Errorf("no member %q: members are %s", alias, strings.Join(s.aliases(), ", "))
	}
	return []string{alias}, nil
}

// control sends req and prints one line per node. It fails when any node
// did not confirm.
func (s *Shell) control(ctx context.Context, a *Args, targets []string, req protocol.Control, ok func(r node.ControlReply) string) ([]node.ControlReply, error) {
	replies, err := s.Node.Control(ctx, targets, req, a.Duration("timeout", 5*time.Second))
	if err != nil {
		return nil, err
	}
	if a.Bool("json") {
		return replies, controlFailure(replies)
	}
	s.printPerNode(controlAnswers(replies, ok))
	return replies, controlFailure(replies)
}

// controlAnswers turns replies into answers for renderPerNode (which
// cleans them): ok(r) is the text of a confirmed reply.
func controlAnswers(replies []node.ControlReply, ok func(r node.ControlReply) string) []NodeAnswer {
	answers := make([]NodeAnswer, len(replies))
	for i, r := range replies {
		answers[i] = NodeAnswer{Node: r.Alias, OK: r.OK}
		switch {
		case r.NoAnswer:
			answers[i].Text = "no answer: " + r.Error
		case !r.OK:
			answers[i].Text = r.Error
		default:
			answers[i].Text = ok(r)
		}
	}
	return answers
}

func controlFailure(replies []node.ControlReply) error {
	var bad []string
	for _, r := range replies {
		if !r.OK {
			bad = append(bad, r.Alias)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d nodes did not confirm: %s", len(bad), len(replies), strings.Join(bad, ", "))
}

func runPing(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.targets(a, 0)
	if err != nil {
		return err
	}
	replies, err := s.control(ctx, a, targets, protocol.Control{Op: node.OpPing}, func(r node.ControlReply) string {
		return fmt.Sprintf("%s (%s)", formatLatency(r.RTT), r.Path)
	})
	if a.Bool("json") {
		for _, r := range replies {
			s.writeJSON(pingJSON{Alias: r.Alias, OK: r.OK, RTTUs: float64(r.RTT.Nanoseconds()) / 1000, Path: r.Path, Error: r.Error})
		}
	}
	return err
}

// pingJSON is one node's answer as printed by !ping --json.
type pingJSON struct {
	Alias string  `json:"alias"`
	OK    bool    `json:"ok"`
	RTTUs float64 `json:"rtt_us"`
	Path  string  `json:"path"`
	Error string  `json:"error,omitempty"`
}

// statusJSON is one node's status as printed by !status --json.
type statusJSON struct {
	Alias          string            `json:"alias"`
	OK             bool              `json:"ok"`
	Error          string            `json:"error,omitempty"`
	Version        string            `json:"version,omitempty"`
	UptimeS        float64           `json:"uptime_s"`
	MembersAlive   int               `json:"members_alive"`
	MembersSuspect int               `json:"members_suspect"`
	MembersFailed  int               `json:"members_failed"`
	Slots          int               `json:"slots"`
	InFlight       int               `json:"in_flight"`
	JobsDone       uint64            `json:"jobs_done"`
	Goroutines     int               `json:"goroutines"`
	RSSBytes       uint64            `json:"rss_bytes"`
	BytesSent      uint64            `json:"bytes_sent"`
	Tags           map[string]string `json:"tags"`
	Config         map[string]string `json:"config,omitempty"`
}

func toStatusJSON(r node.ControlReply) statusJSON {
	out := statusJSON{Alias: r.Alias, OK: r.OK, Error: r.Error, Tags: map[string]string{}}
	if st := r.Status; st != nil {
		out.Version, out.UptimeS = st.Version, float64(st.UptimeMs)/1000
		out.MembersAlive, out.MembersSuspect, out.MembersFailed = st.MembersAlive, st.MembersSusp, st.MembersFailed
		out.Slots, out.InFlight, out.JobsDone = st.Slots, st.InFlight, st.JobsDone
		out.Goroutines, out.RSSBytes, out.BytesSent = st.Goroutines, st.RSSBytes, st.BytesSent
		if st.Tags != nil {
			out.Tags = st.Tags
		}
		out.Config = st.Config
	}
	return out
}

func runStatus(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.targets(a, 0)
	if err != nil {
		return err
	}
	if a.Bool("json") {
		replies, err := s.control(ctx, a, targets, protocol.Control{Op: node.OpStatus}, nil)
		for _, r := range replies {
			s.writeJSON(toStatusJSON(r))
		}
		return err
	}
	replies, err := s.Node.Control(ctx, targets, protocol.Control{Op: node.OpStatus}, a.Duration("timeout", 5*time.Second))
	if err != nil {
		return err
	}
	s.printf("%s", renderStatus(replies, s.pal))
	return controlFailure(replies)
}

// renderStatus is !status's table of the nodes that answered, then the
// per-node errors of those that did not.
func renderStatus(replies []node.ControlReply, p palette) string {
	header := []string{"ALIAS", "VERSION", "UPTIME", "ALIVE", "SUSPECT", "FAILED", "SLOTS", "IN-FLIGHT", "DONE", "GOROUTINES", "RSS", "TAGS"}
	var rows [][]string
	var problems []NodeAnswer
	for _, r := range replies {
		if !r.OK || r.Status == nil {
			problems = append(problems, NodeAnswer{Node: r.Alias, Text: r.Error})
			continue
		}
		st := r.Status
		rows = append(rows, []string{clean(r.Alias), clean(st.Version), (time.Duration(st.UptimeMs) * time.Millisecond).Round(time.Second).String(),
			strconv.Itoa(st.MembersAlive), strconv.Itoa(st.MembersSusp), strconv.Itoa(st.MembersFailed),
			strconv.Itoa(st.Slots), strconv.Itoa(st.InFlight), strconv.FormatUint(st.JobsDone, 10),
			strconv.Itoa(st.Goroutines), fmt.Sprintf("%.1fMiB", float64(st.RSSBytes)/(1<<20)), formatTags(st.Tags)})
	}
	var out string
	if len(rows) > 0 {
		out = table(header, rows, func(i, j int, c string) string {
			if i < 0 {
				return p.bold(c)
			}
			return c
		})
	}
	return out + renderPerNode(problems, p)
}

func runScale(ctx context.Context, s *Shell, a *Args) error {
	if len(a.Pos) == 0 {
		return errors.New("usage: !scale ALIAS|--all N")
	}
	nStr := a.Pos[len(a.Pos)-1]
	k, err := strconv.Atoi(nStr)
	if err != nil {
		return fmt.Errorf("slots %q: give a whole number", nStr)
	}
	a.Pos = a.Pos[:len(a.Pos)-1]
	targets, err := s.targets(a, 0)
	if err != nil {
		return err
	}
	_, err = s.control(ctx, a, targets, protocol.Control{Op: node.OpScale, N: int64(k)}, func(r node.ControlReply) string {
		if r.Status != nil {
			return fmt.Sprintf("ok: %d slots", r.Status.Slots)
		}
		return "ok"
	})
	return err
}

func runShutdown(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.targets(a, 0)
	if err != nil {
		return err
	}
	_, err = s.control(ctx, a, targets, protocol.Control{Op: node.OpShutdown, Now: a.Bool("now")}, func(r node.ControlReply) string {
		return "ok: shutting down"
	})
	return err
}

func runRestart(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.targets(a, 0)
	if err != nil {
		return err
	}
	_, err = s.control(ctx, a, targets, protocol.Control{Op: node.OpRestart}, func(r node.ControlReply) string {
		return "ok: restarting"
	})
	return err
}

func runConfig(ctx context.Context, s *Shell, a *Args) error {
	switch a.Pos[0] {
	case "show":
		if len(a.Pos) != 1 {
			return errors.New("usage: !config show")
		}
		cfg := s.Node.ConfigMap()
		if a.Bool("json") {
			return s.writeJSON(cfg)
		}
		keys := make([]string, 0, len(cfg))
		for k := range cfg {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rows := make([][]string, len(keys))
		for i, k := range keys {
			rows[i] = []string{clean(k), clean(cfg[k])}
		}
		s.printf("%s", table([]string{"KEY", "VALUE"}, rows, nil))
		return nil
	case "set":
		if len(a.Pos) != 3 {
			return errors.New("usage: !config set KEY VALUE [--all]")
		}
		key, value := a.Pos[1], a.Pos[2]
		targets := []string{s.Node.Alias()}
		if a.Bool("all") {
			var err error
			a.Pos = nil
			if targets, err = s.targets(a, 0); err != nil {
				return err
			}
		}
		_, err := s.control(ctx, a, targets, protocol.Control{Op: node.OpConfig, Key: key, Value: value}, func(r node.ControlReply) string {
			return fmt.Sprintf("ok: %s = %s", key, value)
		})
		return err
	}
	return fmt.Errorf("!config takes show or set, not %q", a.Pos[0])
}
