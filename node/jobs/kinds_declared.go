package jobs

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"meshell/protocol"
)

// DeclaredKind is a job kind that runs a command, declared by the node's
// owner (--kind NAME=COMMAND [ARGS…]): a job of it runs Command with the
// job's arguments appended, like the run kind (process group, output caps,
// kill on cancel), but needs no --allow-run: the owner chose the command.
type DeclaredKind struct {
	Name    string
	Command []string // the program and its fixed arguments
	// Idempotent kinds are run again on another worker when theirs was lost
	// mid-run (--kind NAME!=…); others fail instead, since the command may
	// have had effects.
	Idempotent bool
}

func (d DeclaredKind) String() string {
	sep := "="
	if d.Idempotent {
		sep = "!="
	}
	return d.Name + sep + strings.Join(d.Command, " ")
}

// KindsTag is the tag under which a worker gossips its declared kinds, so
// that dispatchers send those kinds to the workers that offer them and know
// which may be run again: "build+render:idem". The node keeps it current.
const KindsTag = "kinds"

// idemSuffix marks an idempotent kind in the kinds tag.
const idemSuffix = ":idem"

// ParseKindSpec reads a --kind value: NAME=COMMAND [ARGS…], or NAME!=… for
// an idempotent kind. COMMAND and ARGS are split on blanks; single and
// double quotes group words and a backslash escapes the next character
// (outside single quotes), as in a shell but with nothing expanded.
func ParseKindSpec(spec string) (DeclaredKind, error) {
	name, cmd, ok := strings.Cut(spec, "=")
	if !ok {
		return DeclaredKind{}, fmt.Errorf("--kind %q: want NAME=COMMAND [ARGS…], e.g. --kind disk=df -h", spec)
	}
	d := DeclaredKind{Name: name}
	if n, found := strings.CutSuffix(name, "!"); found {
		d.Name, d.Idempotent = n, true
	}
	words, err := SplitWords(cmd)
	if err != nil {
		return DeclaredKind{}, fmt.Errorf("--kind %s: %w", d.Name, err)
	}
	d.Command = words
	if err := d.check(); err != nil {
		return DeclaredKind{}, err
	}
	return d, nil
}

func (d DeclaredKind) check() error {
	if err := protocol.ValidKind(d.Name); err != nil {
		return fmt.Errorf("--kind: %w", err)
	}
	if d.Name == RunKind {
		return fmt.Errorf("--kind %s: the kind %s is reserved for !run; pick another name", d.Name, RunKind)
	}
	if builtin(d.Name) {
		// Dispatchers send a built-in kind to any worker, none of them
		// asking which declare it: a declared one would run on some
		// workers and the built-in on the others.
		return fmt.Errorf("--kind %s: %s is a kind built into every node; pick another name, such as %s2", d.Name, d.Name, d.Name)
	}
	if len(d.Command) == 0 || d.Command[0] == "" {
		return fmt.Errorf("--kind %s: no command after '='", d.Name)
	}
	return nil
}

// SplitWords splits s into words as sh does, expanding nothing: blanks
// separate them, single and double quotes group them, and a backslash
// escapes the next character, except in single quotes and, in double
// quotes, before any character but " \ $ and ` (printf "a\tb" keeps its
// backslash).
func SplitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, escaped := false, false
	var quote rune
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && !strings.ContainsRune("\"$\\`", r) {
				cur.WriteByte('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if escaped {
		return nil, errors.New("ends with a backslash")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// checked validates the owner's run settings and resolves each declared
// kind's program on PATH, so that a typo fails at start-up, not per job.
func (c RunConfig) Checked() (RunConfig, error) {
	if c.MaxOutput < 0 || c.MaxOutput > DefaultMaxOutput {
		return c, fmt.Errorf("run output cap %d out of range: use 1 to %d bytes", c.MaxOutput, DefaultMaxOutput)
	}
	if c.KillGrace < 0 {
		return c, fmt.Errorf("run kill grace %v is negative", c.KillGrace)
	}
	seen := map[string]bool{}
	kinds := make([]DeclaredKind, len(c.Kinds))
	for i, d := range c.Kinds {
		if err := d.check(); err != nil {
			return c, err
		}
		if seen[d.Name] {
			return c, fmt.Errorf("--kind %s is declared twice", d.Name)
		}
		seen[d.Name] = true
		path, err := exec.LookPath(d.Command[0])
		if err != nil {
			return c, fmt.Errorf("--kind %s: %w", d.Name, err)
		}
		d.Command = append([]string{path}, d.Command[1:]...)
		kinds[i] = d
	}
	c.Kinds = kinds
	if v := kindsTagValue(kinds); v != "" {
		if err := protocol.ValidTag(KindsTag, v); err != nil {
			return c, fmt.Errorf("--kind: the kinds tag that gossips them is too long (%d bytes); declare fewer kinds or shorter names: %w", len(v), err)
		}
	}
	return c, nil
}

// kindsTagValue is the kinds tag of kinds, sorted by name; "" for none.
func kindsTagValue(kinds []DeclaredKind) string {
	names := make([]string, len(kinds))
	for i, d := range kinds {
		names[i] = d.Name
		if d.Idempotent {
			names[i] += idemSuffix
		}
	}
	slices.Sort(names)
	return strings.Join(names, "+")
}

// offers reports whether tags (a worker's) declare kind, and whether as
// idempotent.
func offers(tags map[string]string, kind string) (declared, idempotent bool) {
	v, ok := tags[KindsTag]
	if !ok {
		return false, false
	}
	for len(v) > 0 {
		var item string
		item, v, _ = strings.Cut(v, "+")
		name, idem := strings.CutSuffix(item, idemSuffix)
		if name == kind {
			return true, idem
		}
	}
	return false, false
}
