package repl

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

func init() {
	commands = append(commands, &Command{
		Name: "!watch", Group: "shell", Args: "CMD [ARGS…] [INTERVAL]", Min: 1, Max: -1, Rest: true,
		Summary: "re-run a listing command in place until Ctrl-C",
		Help: "Clears the screen and redraws the command's output every INTERVAL (default 2s). " +
			"Only listing commands can be watched: those that print a table of members, nodes, workers or jobs (" + listingList + "); " +
			"others are refused, --json or not. " +
			"In scripts it prints --count frames (default 1 there) without clearing.",
		Example: "!watch --count 3 !cluster_members 500ms\n!watch --count 2 !workers --json 1s",
		Flags:   []Flag{countFlag("runs")},
		Complete: func(s *Shell, prev []string) []string {
			if len(prev) == 0 {
				return listingNames()
			}
			return []string{"500ms", "1s", "2s", "5s"}
		},
		Run: runWatch,
	})
}

// listingList names the listing commands in !help watch; a test checks it
// against the table (Command.Listing).
const listingList = "!cluster_members, !status, !workers, !jobs"

// listingNames are the commands !watch accepts.
func listingNames() []string {
	var out []string
	for _, c := range commands {
		if c.Listing {
			out = append(out, c.Name)
		}
	}
	return out
}

// countFlag is the --count of !watch and !top; frames reads it.
func countFlag(what string) Flag {
	return Flag{Name: "count", Kind: FlagInt, Usage: "stop after N " + what + " (0 = until Ctrl-C; in scripts 0 or none is 1)"}
}

// frames is how many frames !watch or !top prints: --count, 0 for no end
// but Ctrl-C. A script has no Ctrl-C to end it, so there it is 1 when
// --count is 0 or not given.
func (s *Shell) frames(a *Args) int {
	count := a.Int("count", 0)
	if count == 0 && !s.interactive {
		count = 1
	}
	return count
}

const (
	watchDefault = 2 * time.Second
	watchMin     = 100 * time.Millisecond
)

// watchTarget splits !watch's words into the command to run, its parsed
// arguments and the interval.
func watchTarget(words []string) (*Command, *Args, time.Duration, error) {
	interval := watchDefault
	if len(words) > 1 {
		if d, err := time.ParseDuration(words[len(words)-1]); err == nil {
			if d < watchMin {
				return nil, nil, 0, fmt.Errorf("!watch interval %v is too short: use %v or more", d, watchMin)
			}
			interval, words = d, words[:len(words)-1]
		}
	}
	if len(words) == 1 && strings.ContainsAny(words[0], " \t") { // !watch "!workers --json"
		w, err := tokenize(words[0])
		if err != nil || len(w) == 0 {
			return nil, nil, 0, fmt.Errorf("cannot read the command to watch %q", words[0])
		}
		words = w
	}
	words = append([]string{"!" + strings.TrimPrefix(words[0], "!")}, words[1:]...)
	// The command first, its arguments next: a command that cannot be
	// watched is refused as such, whatever its arguments.
	if c := lookup(words[0]); c != nil && !c.Listing {
		return nil, nil, 0, fmt.Errorf("!watch re-runs listing commands only (%s); %s is not one", strings.Join(listingNames(), ", "), c.Name)
	}
	cmd, a, err := resolve(words)
	if err != nil {
		return nil, nil, 0, err // the shell names !watch
	}
	return cmd, a, interval, nil
}

func runWatch(ctx context.Context, s *Shell, a *Args) error {
	cmd, args, interval, err := watchTarget(a.Pos)
	if err != nil {
		return err
	}
	count := s.frames(a)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		var buf bytes.Buffer
		err := s.capture(&buf, func() error { return cmd.Run(ctx, s, args) })
		if ctx.Err() != nil {
			return nil // Ctrl-C: back to the prompt
		}
		last := count > 0 && n >= count
		if err != nil && !last { // the last run's error is returned instead
			fmt.Fprintln(&buf, errorText(s.pal, err))
		}
		var frame strings.Builder
		if s.interactive {
			frame.WriteString("\x1b[H\x1b[2J") // home, clear screen
		}
		where := time.Now().Format("15:04:05")
		if alias := s.Node.Alias(); alias != "" {
			where = clean(alias) + ", " + where
		}
		watched := cleanN(strings.Join(append([]string{cmd.Name}, argWords(a.Pos)...), " "), lineCap)
		frame.WriteString(s.pal.dim(fmt.Sprintf("every %v: %s  (%s)", interval, watched, where)))
		if s.interactive {
			frame.WriteString(s.pal.dim("  (Ctrl-C to stop)"))
		}
		frame.WriteString("\n")
		frame.Write(buf.Bytes())
		s.printf("%s", frame.String())
		if last {
			return err // the last run's: a script learns that it failed
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// capture runs f with the shell's output going to w (asynchronous lines
// printed meanwhile land there too), then restores the writers.
func (s *Shell) capture(w *bytes.Buffer, f func() error) error {
	s.wmu.Lock()
	out, errw := s.out, s.errw
	s.out, s.errw = w, w
	s.wmu.Unlock()
	defer s.setWriters(out, errw)
	return f()
}

// argWords are the watched command's arguments as typed (without the
// command itself and the interval), for the title.
func argWords(pos []string) []string {
	if len(pos) <= 1 {
		return nil
	}
	rest := pos[1:]
	if _, err := time.ParseDuration(rest[len(rest)-1]); err == nil {
		rest = rest[:len(rest)-1]
	}
	return rest
}
