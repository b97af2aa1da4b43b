package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"meshell/protocol"
)

// A hostile worker streams a command's output up to the limit, then
// answers busy, so that the dispatcher sends the command again, and streams
// as much again under later Seqs, round after round: the limit is the
// job's, not an attempt's, so the second round ends the job in one error
// and the caller is given no more than the limit.
func TestHostileWorkerCannotResetTheOutputLimitByAnsweringBusy(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "w", nil, Limits{}, RunConfig{Allow: true})
	piece := strings.Repeat("x", 64<<10-1) + "\n"
	var seq uint32
	requests := 0
	c.host("d").send = func(alias string, m protocol.Message) error {
		req, ok := m.(*protocol.JobRequest)
		if !ok {
			return nil // a cancel
		}
		requests++
		for sent := 0; sent+len(piece) <= maxStreamOutput; sent += len(piece) {
			seq++
			d.Receive("w", &protocol.JobChunk{ID: req.ID, Seq: seq, Data: piece, Stream: protocol.StreamStdout})
		}
		d.Receive("w", &protocol.JobResult{ID: req.ID, Status: protocol.JobBusy, Error: "busy"})
		return nil
	}
	got := 0
	replies, err := d.Run(context.Background(), RunRequest{Targets: []string{"w"}, Command: []string{"true"},
		OnOutput: func(_ string, _ bool, data string) { got += len(data) }})
	if err != nil {
		t.Fatal(err)
	}
	r := replies[0]
	if got > maxStreamOutput || len(r.Stdout) > maxStreamOutput {
		t.Errorf("the caller was given %d bytes (%d in the reply) over %d requests; the output limit is %d", got, len(r.Stdout), requests, maxStreamOutput)
	}
	if !strings.Contains(r.Error, ErrOverrun.Error()) || r.OK() {
		t.Errorf("reply %+v, want one overrun error", r.Error)
	}
	if requests > 2 {
		t.Errorf("the command was sent %d times to a worker that streamed past the limit", requests)
	}
	assertNoInFlight(t, d)
}

// A hostile worker streams a kind's chunks up to the stream limit, then
// answers busy, again and again under later Seqs. An answer of busy after
// streaming counts as an attempt lost there, as a drain's rejection of a
// job it ran does: the job ends in one error after its attempts, and the
// caller is given no more than the limit per attempt, as from a worker
// lost after streaming, not per busy round (16 of them).
func TestHostileWorkerCannotResetTheStreamLimitByAnsweringBusy(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "w", map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	var seq uint32
	requests := 0
	c.host("d").send = func(alias string, m protocol.Message) error {
		req, ok := m.(*protocol.JobRequest)
		if !ok {
			return nil
		}
		requests++
		for i := 0; i < protocol.MaxJobChunks; i++ {
			seq++
			d.Receive("w", &protocol.JobChunk{ID: req.ID, Seq: seq, Data: "c"})
		}
		d.Receive("w", &protocol.JobResult{ID: req.ID, Status: protocol.JobBusy, Error: "busy"})
		return nil
	}
	chunks := 0
	_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "stream", Args: []string{"3"}, OnChunk: func(int, string) { chunks++ }})
	if chunks > DefaultMaxAttempts*protocol.MaxJobChunks || requests > DefaultMaxAttempts {
		t.Errorf("the caller was given %d chunks over %d requests; the stream limit is %d an attempt, %d attempts", chunks, requests, protocol.MaxJobChunks, DefaultMaxAttempts)
	}
	if err == nil || !strings.Contains(err.Error(), "failed after 3 attempts") {
		t.Errorf("dispatch: %v, want one error after its attempts", err)
	}
	assertNoInFlight(t, d)
}

// A worker that drains stops a streaming job it ran too long and answers
// rejected: the job goes to another worker, which streams it again from
// its start, within the limits of its own attempt; the caller sees each
// chunk once.
func TestAJobStoppedByADrainStreamsAgainElsewhere(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "w1", map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	c.add(t, "w2", map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	const n = protocol.MaxJobChunks
	var order []string
	c.host("d").send = func(alias string, m protocol.Message) error {
		req, ok := m.(*protocol.JobRequest)
		if !ok {
			return nil
		}
		order = append(order, alias)
		if len(order) == 1 { // the first worker drains 3/4 of the way
			for seq := uint32(1); seq <= n*3/4; seq++ {
				d.Receive(alias, &protocol.JobChunk{ID: req.ID, Seq: seq, Data: "c"})
			}
			d.Receive(alias, &protocol.JobResult{ID: req.ID, Status: protocol.JobRejected, Error: alias + " is draining: job stopped"})
			return nil
		}
		for seq := uint32(1); seq <= n; seq++ {
			d.Receive(alias, &protocol.JobChunk{ID: req.ID, Seq: seq, Data: "c"})
		}
		d.Receive(alias, &protocol.JobResult{ID: req.ID, Status: protocol.JobOK, Result: "done"})
		return nil
	}
	chunks := 0
	res, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "stream", Args: []string{"3"}, OnChunk: func(int, string) { chunks++ }})
	if err != nil || res.Result != "done" || chunks != n || len(order) != 2 {
		t.Fatalf("dispatch: %+v %v after %v; %d chunks, want %d", res, err, order, chunks, n)
	}
	assertNoInFlight(t, d)
}

// A hostile worker's words end up in its job's error: a megabyte of them,
// at every attempt, makes an error of a few lines, not megabytes.
func TestAWorkersWordsInAnErrorAreBounded(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	c.add(t, "w", map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	huge := strings.Repeat("x", 1<<20)
	c.host("d").send = func(alias string, m protocol.Message) error {
		if req, ok := m.(*protocol.JobRequest); ok {
			d.Receive("w", &protocol.JobResult{ID: req.ID, Status: protocol.JobCancelled, Error: huge})
		}
		return nil
	}
	_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "failed after 3 attempts") || len(err.Error()) > 4<<10 {
		t.Fatalf("dispatch: an error of %d bytes, want one of a few lines after 3 attempts", len(err.Error()))
	}
}

// Every one of many workers busy: the error names a few of them.
func TestEveryWorkerBusyNamesAFew(t *testing.T) {
	c := newCluster()
	d := c.add(t, "d", nil, Limits{}, RunConfig{})
	for i := 0; i < 40; i++ {
		c.add(t, fmt.Sprintf("w%02d", i), map[string]string{"role": "worker"}, Limits{}, RunConfig{})
	}
	c.host("d").send = func(alias string, m protocol.Message) error {
		if req, ok := m.(*protocol.JobRequest); ok {
			d.Receive(alias, &protocol.JobResult{ID: req.ID, Status: protocol.JobBusy, Error: "busy"})
		}
		return nil
	}
	_, err := d.Dispatch(context.Background(), DispatchRequest{Kind: "echo", Args: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "every matching worker is busy") || strings.Count(err.Error(), " busy;") > maxNotesShown {
		t.Fatalf("dispatch: %v; want the busy error naming at most %d workers", err, maxNotesShown)
	}
}
