package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"meshell/protocol"
)

// A node that gives no answer, cancelled or timed out, keeps in its reply
// what it streamed before the end, also when the caller takes no output
// as it comes (!run --gather, --diff and --json).
func TestRunWithoutAnAnswerKeepsWhatWasStreamed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cancel   bool
		timeout  time.Duration
		onOutput bool
		wantErr  string
	}{
		{name: "cancelled, output gathered", cancel: true, wantErr: "cancelled before an answer"},
		{name: "cancelled, output streamed", cancel: true, onOutput: true, wantErr: "cancelled before an answer"},
		{name: "timed out, output gathered", timeout: 50 * time.Millisecond, wantErr: "no answer within 50ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster()
			d := c.add(t, "d", nil, Limits{}, RunConfig{})
			c.add(t, "w", nil, Limits{}, RunConfig{Allow: true})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			asked := make(chan bool, 1)
			// w, as d sees it: its first lines come on the request's heels,
			// then nothing more until d gives up.
			c.host("d").send = func(alias string, m protocol.Message) error {
				req, ok := m.(*protocol.JobRequest)
				if !ok {
					return nil // the cancel
				}
				asked <- req.Stream
				d.Receive("w", &protocol.JobChunk{ID: req.ID, Seq: 1, Data: "begin\n", Stream: protocol.StreamStdout})
				d.Receive("w", &protocol.JobChunk{ID: req.ID, Seq: 2, Data: "warn\n", Stream: protocol.StreamStderr})
				if tc.cancel {
					cancel()
				}
				return nil
			}
			req := RunRequest{Targets: []string{"w"}, Command: []string{"sh", "-c", "echo begin; sleep 1000"}, Timeout: tc.timeout}
			var seen string
			if tc.onOutput {
				req.OnOutput = func(_ string, _ bool, data string) { seen += data }
			}
			replies, err := d.Run(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !<-asked {
				t.Error("the request did not ask w to stream its output")
			}
			r := replies[0]
			if !r.NoAnswer || r.Error != tc.wantErr || r.Stdout != "begin\n" || r.Stderr != "warn\n" {
				t.Errorf("reply %+v; want no answer (%s) with stdout %q and stderr %q", r, tc.wantErr, "begin\n", "warn\n")
			}
			if tc.onOutput && seen != "begin\nwarn\n" {
				t.Errorf("OnOutput saw %q", seen)
			}
		})
	}
}

// A target that is not a live member is never sent the command: its reply
// says so, names no job (none was made) and tells what to do; it is an
// error, not a node that did not answer.
func TestRunToAMemberNotLiveSendsNothing(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "b1", nil, Limits{}, RunConfig{Allow: true})
	c.add(t, "b2", nil, Limits{}, RunConfig{Allow: true})
	c.setState("b1", protocol.StateFailed)
	c.setState("b2", protocol.StateLeft)
	c.host("d").send = func(alias string, m protocol.Message) error {
		t.Errorf("sent %T to %s", m, alias)
		return ErrNotConnected
	}
	replies, err := d.Run(context.Background(), RunRequest{Targets: []string{"b1", "b2", "ghost"}, Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	const what = ", so nothing was sent to it: pick another target (!cluster_members shows each member's state)"
	for i, want := range []string{"b1 is failed" + what, "b2 has left the cluster" + what, "ghost is not a member" + what} {
		if r := replies[i]; r.Error != want || r.NoAnswer || r.Refused || r.Exited {
			t.Errorf("reply %+v; want the error %q", r, want)
		}
	}
}

// A command Run refuses before sending anything is named plainly, once:
// the shell's "!run: " already says which command it was.
func TestRunRefusesAnEmptyCommandPlainly(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	for _, cmd := range [][]string{nil, {""}, make([]string, protocol.MaxJobArgs+1)} {
		if len(cmd) > 1 {
			cmd[0] = "echo"
		}
		_, err := d.Run(context.Background(), RunRequest{Targets: []string{"d"}, Command: cmd})
		if err == nil || strings.HasPrefix(err.Error(), "run:") {
			t.Errorf("Run(%d words): %v, want an error that does not begin with run:", len(cmd), err)
		}
	}
}
