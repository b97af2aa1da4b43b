package repl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"meshell/node"
)

func init() {
	commands = append(commands, &Command{
		Name: "!top", Group: "control", Max: 0,
		Summary: "a live view of every member: state, RTT, CPU %, RSS, jobs/s, in flight, slots",
		Help: "Asks every live member for its !status once per --interval (default 2s, at least 500ms) and redraws the table in place " +
			"until Ctrl-C. CPU % and jobs/s are the change since the previous frame. In scripts it prints --count frames (default 1 there).",
		Example: "!top --count 2 --interval 500ms",
		Flags: []Flag{
			countFlag("frames"),
			{Name: "interval", Kind: FlagDuration, Usage: "time between two frames", Value: func() []string { return []string{"500ms", "1s", "2s", "5s"} }},
		},
		Run: runTop,
	})
}

const (
	topDefault = 2 * time.Second
	topMin     = 500 * time.Millisecond // one status round per member per interval: the bound on !top's traffic
)

// topSample is one member's status at a moment, kept for the next frame's rates.
type topSample struct {
	at   time.Time
	cpu  uint64
	done uint64
}

func runTop(ctx context.Context, s *Shell, a *Args) error {
	if !s.Node.Running() {
		return node.ErrNotRunning
	}
	interval := a.Duration("interval", topDefault)
	if interval < topMin {
		return fmt.Errorf("!top --interval %v is too short: use %v or more", interval, topMin)
	}
	count := s.frames(a)
	prev := map[string]topSample{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		frame, err := s.topFrame(ctx, min(interval, 5*time.Second), prev)
		if ctx.Err() != nil {
			return nil // Ctrl-C: back to the prompt
		}
		if err != nil {
			return err
		}
		var b strings.Builder
		if s.interactive {
			b.WriteString("\x1b[H\x1b[2J") // home, clear screen
		}
		title := fmt.Sprintf("every %v: !top  (%s, %s)", interval, clean(s.Node.Alias()), time.Now().Format("15:04:05"))
		if s.interactive {
			title += "  (Ctrl-C to stop)"
		}
		b.WriteString(s.pal.dim(title) + "\n" + frame)
		s.printf("%s", b.String())
		if count > 0 && n >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// topFrame asks every live member for its status and renders the table,
// one row per member of the table; prev carries each member's last sample.
func (s *Shell) topFrame(ctx context.Context, timeout time.Duration, prev map[string]topSample) (string, error) {
	entries := s.Node.Members().Entries
	var targets []string
	for _, e := range entries {
		if e.State == node.StateAlive || e.State == node.StateSuspect {
			targets = append(targets, e.Alias)
		}
	}
	replies, err := s.Node.Control(ctx, targets, node.ControlRequest{Op: node.OpStatus}, timeout)
	if err != nil {
		return "", err
	}
	byAlias := map[string]node.ControlReply{}
	for _, r := range replies {
		byAlias[r.Alias] = r
	}
	now := time.Now()
	rows := make([][]string, len(entries))
	for i, e := range entries {
		rows[i] = topRow(e, byAlias[e.Alias], now, prev)
	}
	header := []string{"ALIAS", "STATE", "RTT", "CPU", "RSS", "JOBS/S", "IN-FLIGHT", "SLOTS"}
	return table(header, rows, func(i, j int, cell string) string {
		switch {
		case i < 0:
			return s.pal.bold(cell)
		case j == 1:
			return s.pal.state(entries[i].State, cell)
		}
		return cell
	}), nil
}

// topRow is one member's row: "-" where it did not answer or where a rate
// needs a previous frame.
func topRow(e node.Member, r node.ControlReply, now time.Time, prev map[string]topSample) []string {
	alias := clean(e.Alias)
	if e.Self {
		alias += " *"
	}
	row := []string{alias, e.State.String(), formatRTT(e.RTT, e.Self), "-", "-", "-", "-", "-"}
	if !r.OK || r.Status == nil {
		return row
	}
	st := r.Status
	row[4] = fmt.Sprintf("%.1fMiB", float64(st.RSSBytes)/(1<<20))
	row[6], row[7] = strconv.Itoa(st.InFlight), strconv.Itoa(st.Slots)
	if p, ok := prev[e.Alias]; ok && now.After(p.at) {
		secs := now.Sub(p.at).Seconds()
		if st.CPUMs >= p.cpu && st.CPUMs > 0 {
			row[3] = fmt.Sprintf("%.1f%%", float64(st.CPUMs-p.cpu)/10/secs)
		}
		if st.JobsDone >= p.done {
			row[5] = fmt.Sprintf("%.1f", float64(st.JobsDone-p.done)/secs)
		}
	}
	prev[e.Alias] = topSample{at: now, cpu: st.CPUMs, done: st.JobsDone}
	return row
}
