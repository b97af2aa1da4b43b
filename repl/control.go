package repl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshell/node"
)

// The control plane: commands addressed to nodes themselves, one or all,
// each answered per node with an acknowledgement, an error or silence.
// Confirmed answers go to stdout; the nodes that did not confirm, with
// their reasons, make the command's one error line.
func init() {
	timeoutFlag := Flag{Name: "timeout", Kind: FlagDuration, Usage: "how long to wait for each node's acknowledgement (default 5s)"}
	commands = append(commands, []*Command{
		targeted(&Command{
			Name: "!ping", Group: "control", Args: "TARGET", Max: -1,
			Summary: "round-trip time to nodes",
			Flags:   []Flag{flagJSON, timeoutFlag},
			Example: "!ping worker1\n!ping worker1 worker2\n!ping --all\n!ping --tag role=worker",
			Run:     runPing,
		}),
		targeted(&Command{
			Name: "!status", Group: "control", Args: "TARGET", Max: -1, Listing: true,
			Summary: "version, protocol, uptime, members seen, slots, jobs, goroutines, RSS and tags of nodes",
			Flags:   []Flag{flagJSON, timeoutFlag},
			Example: "!status --all\n!status worker1 --json\n!status --tag role=work*",
			Run:     runStatus,
		}),
		targeted(&Command{
			Name: "!scale", Group: "control", Args: "TARGET N", Max: -1, // runScale says what is missing
			Summary:   "set the number of worker slots of nodes (running jobs are not disturbed)",
			Flags:     []Flag{timeoutFlag},
			Example:   "!scale worker1 8\n!scale --tag role=worker 4",
			Run:       runScale,
			NoHistory: true,
		}),
		targeted(&Command{
			Name: "!shutdown", Group: "control", Args: "TARGET", Max: -1,
			Summary: "drain and stop nodes: jobs finish or fail over, the node leaves and its process exits 0",
			Help: fmt.Sprintf("Without --now each node drains first: it takes no new jobs or commands, and running ones, !run commands included, "+
				"get up to %s to finish; what still runs then is stopped (SIGTERM, then SIGKILL), and a job fails over when its kind allows. "+
				"--now skips the drain and stops running commands at once. When this node is one of them it shuts down last.", node.ShutdownDrain),
			Flags:     []Flag{{Name: "now", Kind: FlagBool, Usage: "do not wait for running jobs"}, timeoutFlag},
			Example:   "!shutdown worker2",
			Run:       runShutdown,
			NoHistory: true,
		}),
		targeted(&Command{
			Name: "!restart", Group: "control", Args: "TARGET", Max: -1,
			Summary: "nodes leave, reconnect through the members they knew and come back at a higher incarnation",
			Help: "Each node confirms, then !restart waits until it is alive again at a higher incarnation (NODE: alive again), " +
				fmt.Sprintf("or fails when it is not back within %v. ", restartWait) +
				"Several nodes restart one after another, each alive again before the next starts (this node last); " +
				"the first that does not confirm or come back stops the rest.",
			Flags:     []Flag{timeoutFlag},
			Example:   "!restart worker1",
			Run:       runRestart,
			NoHistory: true,
		}),
		targeted(&Command{
			Name: "!config", Group: "control", Args: "show [TARGET] | set KEY VALUE [TARGET]", Min: 1, Max: -1,
			Summary: "show or change runtime tunables, here or on other nodes",
			Help: "Keys: " + strings.Join(node.ConfigKeys(), ", ") + ". Without a TARGET, this node. " +
				"show with a TARGET gathers the nodes' values and marks those that differ.",
			Flags:   []Flag{flagJSON, timeoutFlag},
			Example: "!config show\n!config set probe-interval 300ms --all\n!config show --all",
			Complete: func(s *Shell, prev []string) []string {
				switch {
				case len(prev) == 0:
					return []string{"show", "set"}
				case prev[0] != "set":
					return completeTarget(s, prev[1:])
				case len(prev) == 1:
					return node.ConfigKeys()
				case len(prev) == 2:
					return s.configValues(prev[1])
				}
				return completeTarget(s, prev[3:])
			},
			Run:       runConfig,
			NoHistory: true,
		}),
	}...)
}

// control sends req and prints one line per node that confirmed: ok(r)
// (nothing with --json: the caller prints its documents). It fails, with
// every reason, when any node did not confirm.
func (s *Shell) control(ctx context.Context, a *Args, targets []string, req node.ControlRequest, ok func(r node.ControlReply) string) ([]node.ControlReply, error) {
	replies, err := s.Node.Control(ctx, targets, req, a.Duration("timeout", 5*time.Second))
	if err != nil {
		return nil, err
	}
	if !a.Bool("json") {
		var answers []NodeAnswer
		for _, r := range replies {
			if r.OK {
				answers = append(answers, NodeAnswer{Node: r.Alias, OK: true, Text: ok(r)})
			}
		}
		s.printPerNode(answers)
	}
	return replies, controlFailure(replies)
}

// controlFailure names the nodes that did not confirm and why, nodes with
// the same reason together: "n2 did not confirm: refused: …" or "2 of 3
// nodes did not confirm: n2,n3: no answer within 5s".
func controlFailure(replies []node.ControlReply) error {
	var reasons []string
	nodes := map[string][]string{}
	bad := 0
	for _, r := range replies {
		if r.OK {
			continue
		}
		bad++
		why := replyError(r)
		if nodes[why] == nil {
			reasons = append(reasons, why)
		}
		nodes[why] = append(nodes[why], r.Alias)
	}
	switch {
	case bad == 0:
		return nil
	case len(replies) == 1:
		return fmt.Errorf("%s did not confirm: %s", replies[0].Alias, reasons[0])
	}
	parts := make([]string, len(reasons))
	for i, why := range reasons {
		parts[i] = strings.Join(nodes[why], ",") + ": " + why
	}
	return fmt.Errorf("%d of %d nodes did not confirm: %s", bad, len(replies), strings.Join(parts, "; "))
}

// replyError is why a node did not confirm.
func replyError(r node.ControlReply) string {
	switch {
	case r.NoAnswer && r.Error == "":
		return "no answer"
	case r.NoAnswer && !strings.HasPrefix(r.Error, "no answer"):
		return "no answer: " + r.Error
	}
	return r.Error
}

// nodeErrorJSON is a node that did not confirm, in every per-node --json
// output (!ping, !status, !config).
type nodeErrorJSON struct {
	Alias string `json:"alias"`
	OK    bool   `json:"ok"` // false
	Error string `json:"error"`
}

func nodeError(r node.ControlReply) nodeErrorJSON {
	return nodeErrorJSON{Alias: r.Alias, Error: replyError(r)}
}

// pingJSON is one node's answer as printed by !ping --json.
type pingJSON struct {
	Alias string  `json:"alias"`
	OK    bool    `json:"ok"` // true
	RTTMs float64 `json:"rtt_ms"`
	Path  string  `json:"path"`
}

func runPing(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.selectTargets(a, a.Pos)
	if err != nil {
		return err
	}
	replies, err := s.control(ctx, a, targets, node.ControlRequest{Op: node.OpPing}, func(r node.ControlReply) string {
		return fmt.Sprintf("%s (%s)", formatLatency(r.RTT), r.Path)
	})
	if a.Bool("json") {
		for _, r := range replies {
			if !r.OK {
				s.writeJSON(nodeError(r))
				continue
			}
			s.writeJSON(pingJSON{Alias: r.Alias, OK: true, RTTMs: ms(r.RTT), Path: r.Path})
		}
	}
	return err
}

// statusJSON is one node's status as printed by !status --json.
type statusJSON struct {
	Alias          string            `json:"alias"`
	OK             bool              `json:"ok"` // true
	Version        string            `json:"version"`
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
	Config         map[string]any    `json:"config"`
	KeyIDs         []string          `json:"key_ids"`   // cluster keys, primary first; [] = not encrypted
	Operators      bool              `json:"operators"` // control that changes the node must be signed
	Protocol       protocolJSON      `json:"protocol"`  // current: the version it speaks with this node
}

// statusVersions is the protocol range a node's status reports (a node of
// protocol 1 reports none) and, as Cur, the version it speaks with this node.
func statusVersions(st *node.Status) node.Versions {
	if st.ProtoMax == 0 {
		return node.Versions{Min: 1, Max: 1, Cur: 1}
	}
	return node.Versions{Min: st.ProtoMin, Max: st.ProtoMax, Cur: st.ProtoCur}
}

// statusDoc is a reply as !status --json prints it: the node's status, or
// the error object when it did not answer.
func statusDoc(r node.ControlReply) any {
	st := r.Status
	if !r.OK || st == nil {
		return nodeError(r)
	}
	out := statusJSON{Alias: r.Alias, OK: true, Version: st.Version, UptimeS: float64(st.UptimeMs) / 1000,
		MembersAlive: st.MembersAlive, MembersSuspect: st.MembersSusp, MembersFailed: st.MembersFailed,
		Slots: st.Slots, InFlight: st.InFlight, JobsDone: st.JobsDone,
		Goroutines: st.Goroutines, RSSBytes: st.RSSBytes, BytesSent: st.BytesSent,
		Tags: st.Tags, Config: configValues(st.Config), KeyIDs: st.KeyIDs, Operators: st.Operators}
	v := statusVersions(st)
	out.Protocol = protocolJSON{Min: v.Min, Max: v.Max, Current: v.Cur}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	if out.KeyIDs == nil {
		out.KeyIDs = []string{}
	}
	return out
}

// configValues types a node's tunables for JSON: counts are numbers,
// durations and names stay strings in the syntax !config set takes.
func configValues(cfg map[string]string) map[string]any {
	out := make(map[string]any, len(cfg))
	for k, v := range cfg {
		if n, err := strconv.Atoi(v); err == nil {
			out[k] = n
		} else {
			out[k] = v
		}
	}
	return out
}

// gatherStatus asks the TARGET in words for their status (which carries
// their tunables too).
func (s *Shell) gatherStatus(ctx context.Context, a *Args, words []string) ([]node.ControlReply, error) {
	targets, err := s.selectTargets(a, words)
	if err != nil {
		return nil, err
	}
	return s.Node.Control(ctx, targets, node.ControlRequest{Op: node.OpStatus}, a.Duration("timeout", 5*time.Second))
}

func runStatus(ctx context.Context, s *Shell, a *Args) error {
	replies, err := s.gatherStatus(ctx, a, a.Pos)
	if err != nil {
		return err
	}
	if a.Bool("json") {
		for _, r := range replies {
			s.writeJSON(statusDoc(r))
		}
	} else {
		s.printf("%s", renderStatus(replies, s.pal))
	}
	return controlFailure(replies)
}

// renderStatus is !status's table of the nodes that answered.
func renderStatus(replies []node.ControlReply, p palette) string {
	header := []string{"ALIAS", "VERSION", "PROTOCOL", "UPTIME", "ALIVE", "SUSPECT", "FAILED", "SLOTS", "IN-FLIGHT", "DONE", "GOROUTINES", "RSS", "SECURITY", "TAGS"}
	var rows [][]string
	for _, r := range replies {
		if !r.OK || r.Status == nil {
			continue
		}
		st := r.Status
		rows = append(rows, []string{clean(r.Alias), clean(st.Version), formatProtocol(statusVersions(st)), (time.Duration(st.UptimeMs) * time.Millisecond).Round(time.Second).String(),
			strconv.Itoa(st.MembersAlive), strconv.Itoa(st.MembersSusp), strconv.Itoa(st.MembersFailed),
			strconv.Itoa(st.Slots), strconv.Itoa(st.InFlight), strconv.FormatUint(st.JobsDone, 10),
			strconv.Itoa(st.Goroutines), fmt.Sprintf("%.1fMiB", float64(st.RSSBytes)/(1<<20)), security(st), formatTags(st.Tags)})
	}
	if len(rows) == 0 {
		return ""
	}
	return table(header, rows, func(i, j int, c string) string {
		if i < 0 {
			return p.bold(c)
		}
		return c
	})
}

func runScale(ctx context.Context, s *Shell, a *Args) error {
	usage := "usage: " + cmdUsage("!scale")
	byFlag := a.Bool("all") || len(a.KV("tag")) > 0
	if len(a.Pos) == 0 || len(a.Pos) == 1 && !byFlag && !isCount(a.Pos[0]) {
		return fmt.Errorf("N, the number of slots, is missing; %s", usage)
	}
	nStr := a.Pos[len(a.Pos)-1]
	if err := tooLarge("slots", nStr); err != nil {
		return fmt.Errorf("%w; %s", err, usage)
	}
	k, err := strconv.Atoi(nStr)
	if err != nil || k < 0 {
		return fmt.Errorf("slots %q: give a whole number ≥ 0; %s", nStr, usage)
	}
	targets, err := s.selectTargets(a, a.Pos[:len(a.Pos)-1])
	if err != nil {
		return fmt.Errorf("%w; %s", err, usage)
	}
	_, err = s.control(ctx, a, targets, node.ControlRequest{Op: node.OpScale, N: int64(k)}, func(r node.ControlReply) string {
		if r.Status != nil {
			return fmt.Sprintf("ok: %d slots", r.Status.Slots)
		}
		return "ok"
	})
	return err
}

func isCount(w string) bool {
	_, err := strconv.Atoi(w)
	return err == nil
}

func runShutdown(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.selectTargets(a, a.Pos)
	if err != nil {
		return err
	}
	_, err = s.control(ctx, a, targets, node.ControlRequest{Op: node.OpShutdown, Now: a.Bool("now")}, func(r node.ControlReply) string {
		return "ok: shutting down"
	})
	return err
}

func runRestart(ctx context.Context, s *Shell, a *Args) error {
	targets, err := s.selectTargets(a, a.Pos)
	if err != nil {
		return err
	}
	// One after another, this node last, each alive again at a higher
	// incarnation before the next goes: the cluster keeps its members. One
	// node is waited for the same way, this node too (its restart is done
	// when the request returns; it is then alive at its new incarnation).
	self := s.Node.Alias()
	if i := slices.Index(targets, self); i >= 0 {
		targets = append(slices.Delete(targets, i, i+1), self)
	}
	for i, t := range targets {
		before, _ := s.Node.Members().Get(t)
		_, err := s.control(ctx, a, []string{t}, node.ControlRequest{Op: node.OpRestart}, func(r node.ControlReply) string {
			return "ok: restarting"
		})
		if err == nil {
			err = s.waitBack(ctx, t, before.Incarnation, restartWait)
		}
		if err != nil {
			if rest := targets[i+1:]; len(rest) > 0 {
				return fmt.Errorf("%w; not restarted: %s", err, strings.Join(cleanAll(rest), ","))
			}
			return err
		}
	}
	return nil
}

// restartWait bounds how long a rolling restart waits for each node to
// come back.
const restartWait = 30 * time.Second

// waitBack waits until alias is alive above incarnation inc.
func (s *Shell) waitBack(ctx context.Context, alias string, inc uint64, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := s.Node.WaitFor(ctx, func(sn *nodeSnapshot) bool {
		e, ok := sn.Get(alias)
		return ok && e.State == node.StateAlive && e.Incarnation > inc
	})
	if err != nil {
		return fmt.Errorf("%s confirmed but was not alive again within %v", clean(alias), limit)
	}
	s.printf("%s: alive again\n", clean(alias))
	return nil
}

// configJSON is one node's tunables as printed by !config --json.
type configJSON struct {
	Alias  string         `json:"alias"`
	OK     bool           `json:"ok"` // true
	Config map[string]any `json:"config"`
}

func runConfig(ctx context.Context, s *Shell, a *Args) error {
	remote := a.Bool("all") || len(a.KV("tag")) > 0
	switch a.Pos[0] {
	case "show":
		if len(a.Pos) > 1 || remote {
			return s.configShowAll(ctx, a, a.Pos[1:])
		}
		cfg := s.Node.ConfigMap()
		if a.Bool("json") {
			return s.writeJSON(configJSON{Alias: s.Node.Alias(), OK: true, Config: configValues(cfg)})
		}
		keys := slices.Sorted(maps.Keys(cfg))
		rows := make([][]string, len(keys))
		for i, k := range keys {
			rows[i] = []string{clean(k), clean(cfg[k])}
		}
		s.printf("%s", table([]string{"KEY", "VALUE"}, rows, func(i, j int, c string) string {
			if i < 0 {
				return s.pal.bold(c)
			}
			return c
		}))
		return nil
	case "set":
		if len(a.Pos) < 3 {
			return errors.New("usage: !config set KEY VALUE [TARGET]")
		}
		key, value := a.Pos[1], a.Pos[2]
		if len(a.Pos) == 3 && !remote { // this node: in or out of a cluster
			if err := s.Node.SetConfig(key, value); err != nil {
				return err
			}
			if a.Bool("json") {
				return s.writeJSON(configJSON{Alias: s.Node.Alias(), OK: true, Config: configValues(s.Node.ConfigMap())})
			}
			s.printf("ok: %s = %s\n", clean(key), clean(value))
			return nil
		}
		targets, err := s.selectTargets(a, a.Pos[3:])
		if err != nil {
			return err
		}
		replies, err := s.control(ctx, a, targets, node.ControlRequest{Op: node.OpConfig, Key: key, Value: value}, func(r node.ControlReply) string {
			return fmt.Sprintf("ok: %s = %s", key, value)
		})
		if a.Bool("json") {
			s.printConfigJSON(replies)
		}
		return err
	}
	return fmt.Errorf("!config takes show or set, not %q", a.Pos[0])
}

func (s *Shell) printConfigJSON(replies []node.ControlReply) {
	for _, r := range replies {
		if !r.OK || r.Status == nil {
			s.writeJSON(nodeError(r))
			continue
		}
		s.writeJSON(configJSON{Alias: r.Alias, OK: true, Config: configValues(r.Status.Config)})
	}
}

// configShowAll gathers every live node's tunables (the status operation
// carries them) and prints one row per key when all nodes agree, or one
// row per value, with the nodes that have it, when they differ.
func (s *Shell) configShowAll(ctx context.Context, a *Args, words []string) error {
	replies, err := s.gatherStatus(ctx, a, words)
	if err != nil {
		return err
	}
	if a.Bool("json") {
		s.printConfigJSON(replies)
		return controlFailure(replies)
	}
	s.printf("%s", renderConfigAll(replies, s.pal))
	return controlFailure(replies)
}

// renderConfigAll is the table of !config show --all. A key whose value
// differs between nodes is marked * and shown in yellow, one row per value.
func renderConfigAll(replies []node.ControlReply, p palette) string {
	byKey := map[string]map[string][]string{} // key → value → aliases
	answered := 0
	for _, r := range replies {
		if !r.OK || r.Status == nil {
			continue
		}
		answered++
		for k, v := range r.Status.Config {
			if byKey[k] == nil {
				byKey[k] = map[string][]string{}
			}
			byKey[k][v] = append(byKey[k][v], r.Alias)
		}
	}
	if answered == 0 {
		return ""
	}
	var rows [][]string
	var differs []bool
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		vals := byKey[k]
		if len(vals) == 1 {
			for v, nodes := range vals {
				where := fmt.Sprintf("all %d", answered)
				if len(nodes) < answered { // some nodes lack the key
					where = strings.Join(cleanAll(nodes), ",")
				}
				rows = append(rows, []string{clean(k), clean(v), where})
				differs = append(differs, len(nodes) < answered)
			}
			continue
		}
		for i, v := range slices.Sorted(maps.Keys(vals)) {
			key := ""
			if i == 0 {
				key = clean(k) + " *"
			}
			nodes := slices.Sorted(slices.Values(vals[v]))
			rows = append(rows, []string{key, clean(v), strings.Join(cleanAll(nodes), ",")})
			differs = append(differs, true)
		}
	}
	out := table([]string{"KEY", "VALUE", "NODES"}, rows, func(i, j int, c string) string {
		switch {
		case i < 0:
			return p.bold(c)
		case differs[i]:
			return p.warnText(c)
		}
		return c
	})
	if slices.Contains(differs, true) {
		out += p.dim("* differs between nodes") + "\n"
	}
	return out
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// security is a node's SECURITY cell: "tls KEYID(+N)" or "plaintext", and
// "+operators" when control must be signed.
func security(st *node.Status) string {
	out := "plaintext"
	if len(st.KeyIDs) > 0 {
		out = "tls " + clean(st.KeyIDs[0])
		if n := len(st.KeyIDs) - 1; n > 0 {
			out += "(+" + strconv.Itoa(n) + ")"
		}
	}
	if st.Operators {
		out += " +operators"
	}
	return out
}
