package repl

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"meshell/node"
)

// startNode starts an in-process node; with join it joins through that
// address.
func startNode(t *testing.T, alias string, tags map[string]string, join string) *node.Node {
	t.Helper()
	return startNodeWith(t, testConfig(t, alias, tags), join)
}

func startNodeWith(t *testing.T, cfg node.Config, join string) *node.Node {
	t.Helper()
	alias := cfg.Alias
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if join == "" {
		if _, err := n.Start(""); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Join(ctx, join); err != nil {
		t.Fatalf("%s joining %s: %v", alias, join, err)
	}
	return n
}

// waitAlive waits until n sees every alias alive.
func waitAlive(t *testing.T, n *node.Node, aliases ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.WaitFor(ctx, func(sn *node.Snapshot) bool {
		for _, a := range aliases {
			if e, ok := sn.Get(a); !ok || e.State != node.StateAlive {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s never saw %v alive: %s", n.Alias(), aliases, memberStates(n.Members()))
	}
}

// crashed starts alias joined to n[0], closes it without a goodbye (a
// crash) and waits until every n sees it failed.
func crashed(t *testing.T, alias string, n ...*node.Node) {
	t.Helper()
	gone := startNode(t, alias, nil, n[0].Addr())
	for _, m := range n {
		waitAlive(t, m, alias)
	}
	gone.Close()
	for _, m := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.WaitFor(ctx, func(sn *node.Snapshot) bool {
			e, ok := sn.Get(alias)
			return ok && e.State == node.StateFailed
		})
		cancel()
		if err != nil {
			t.Fatalf("%s never saw %s failed: %s", m.Alias(), alias, memberStates(m.Members()))
		}
	}
}

// leaveSeen has n leave and waits until every observer lists it gone (left,
// or failed when its goodbye was lost), so that a later example's --all
// does not wait on a node that is gone. known says n joined the observers'
// cluster: then an observer must list it, since one that does not yet (its
// loop still holds n's connection) will list it alive, and pass that on.
func leaveSeen(t *testing.T, n *node.Node, known bool, observers ...*node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A script leaves at the end of its input, so the node has usually left
	// already; the observers may not have heard it yet.
	n.Leave(ctx)
	last := n.Self().Incarnation // an example that left and rejoined left twice
	for _, o := range observers {
		err := o.WaitFor(ctx, func(sn *node.Snapshot) bool {
			e, ok := sn.Get(n.Alias())
			// A left entry must be this leave's, not the first of two. A
			// failed one is gone too, whatever its incarnation: an observer
			// starved of CPU (both cores saturated) may have failed the node
			// before the last refutation and the Leave reached it.
			return !ok && !known || ok && (e.State == node.StateLeft && e.Incarnation >= last || e.State == node.StateFailed)
		})
		if err != nil {
			t.Errorf("%s never saw %s leave: %s", o.Alias(), n.Alias(), memberStates(o.Members()))
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// script runs lines in script mode on a shell of n and returns its exit
// status, stdout and stderr.
func script(t *testing.T, n *node.Node, lines string, keepGoing bool) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	sh := New(n, Options{Out: &out, Err: &errb})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := sh.RunScript(ctx, strings.NewReader(lines), keepGoing)
	return code, out.String(), errb.String()
}

// TestEveryHelpExampleRuns runs the example lines of every !help CMD, in
// script mode, against a cluster shaped like --demo's: worker1 and worker2
// (role=worker). Each example runs on a node of its own, joined to the
// cluster unless the example starts or joins one itself. The address the
// examples give, 127.0.0.1:7001, stands for worker1's (a free one for
// !start_cluster). Every node allows !run, as its help says nodes must.
// !restart and !shutdown run last: they take a worker away.
func TestEveryHelpExampleRuns(t *testing.T) {
	config := func(alias string, tags map[string]string) node.Config {
		cfg := testConfig(t, alias, tags)
		cfg.Run.Allow = true // --allow-run
		return cfg
	}
	worker := map[string]string{"role": "worker"}
	w1 := startNodeWith(t, config("worker1", worker), "")
	w2 := startNodeWith(t, config("worker2", worker), w1.Addr())
	waitAlive(t, w1, "worker2")
	_, seedPort, _ := net.SplitHostPort(w1.Addr())

	order := slices.Clone(commands)
	last := func(c *Command) int { return slices.Index([]string{"!restart", "!shutdown"}, c.Name) }
	slices.SortStableFunc(order, func(a, b *Command) int { return last(a) - last(b) })
	for i, c := range order {
		lines := examples(c)
		if len(lines) == 0 {
			t.Errorf("!help %s shows no example", strings.TrimPrefix(c.Name, "!"))
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			waitAlive(t, w2, "worker1")
			waitAlive(t, w1, "worker2")
			n, err := node.New(config(fmt.Sprintf("ex%d", i), nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.Close)
			joins := firstWord(lines[0]) != "!start_cluster" // the workers' cluster, so they know n
			switch {
			case c.Name == "!restart": // worker1 came back knowing only the members still there
				t.Cleanup(func() { leaveSeen(t, n, joins, w2); leaveSeen(t, n, false, w1) })
			case i < len(order)-1:
				t.Cleanup(func() { leaveSeen(t, n, joins, w1, w2) })
			default:
				t.Cleanup(func() { leaveSeen(t, n, joins) }) // !shutdown took a worker away; no example follows
			}
			port := seedPort
			switch firstWord(lines[0]) {
			case "!start_cluster":
				port = freePort(t)
			case "!join_cluster":
			default:
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := n.JoinAny(ctx, []string{w1.Addr(), w2.Addr()}, 5*time.Second)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			if c.Name == "!force-leave" {
				crashed(t, "worker3", w1, w2, n) // the example forces it out
			}
			if i > 0 {
				// Both workers list every earlier example's node gone
				// (leaveSeen), so the newcomer must not list one live:
				// --all would wait on it.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := n.WaitFor(ctx, func(sn *node.Snapshot) bool {
					for j := range i {
						if e, ok := sn.Get(fmt.Sprintf("ex%d", j)); ok && (e.State == node.StateAlive || e.State == node.StateSuspect) {
							return false
						}
					}
					return true
				})
				cancel()
				if err != nil {
					t.Fatalf("%s still lists an earlier example's node live: %s", n.Alias(), memberStates(n.Members()))
				}
			}
			text := strings.ReplaceAll(strings.Join(lines, "\n"), "7001", port)
			if code, out, errs := script(t, n, text+"\n", false); code != 0 {
				t.Fatalf("the example of !help %s failed:\n%s\nstdout:\n%s\nstderr:\n%s", strings.TrimPrefix(c.Name, "!"), text, out, errs)
			}
		})
	}
}
