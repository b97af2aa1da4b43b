package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Result is one trial of a membership scenario.
type Result struct {
	Scenario string
	System   string
	Trial    int
	Metrics  map[string]float64 // only valid, complete measurements
	Error    string             // e.g. "not within cap ..."
	Extra    map[string]any     // per-node details, partial results
}

func (h *Harness) emit(m map[string]any) {
	m["run"] = h.runID
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	h.outMu.Lock()
	defer h.outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
	if h.jsonFile != nil {
		h.jsonFile.Write(append(b, '\n'))
	}
}

func (h *Harness) record(r *Result) {
	m := map[string]any{"type": "trial", "scenario": r.Scenario, "system": r.System, "trial": r.Trial}
	for k, v := range r.Metrics {
		m[k] = round3(v)
	}
	if r.Error != "" {
		m["error"] = r.Error
		h.hadError = true
		fmt.Fprintf(os.Stderr, "harness:   %s / %s / trial %d: %s\n", r.Scenario, r.System, r.Trial, r.Error)
	}
	if len(r.Extra) > 0 {
		m["detail"] = r.Extra
	}
	h.outMu.Lock()
	h.results = append(h.results, r)
	h.outMu.Unlock()
	h.emit(m)
}

func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// printSummary emits one summary JSON line per (scenario, system, metric)
// and writes the human-readable tables to w.
func (h *Harness) printSummary(w io.Writer) {
	h.outMu.Lock()
	results := slices.Clone(h.results)
	rpc := slices.Clone(h.rpcRes)
	h.outMu.Unlock()

	type key struct{ sc, sys, metric string }
	vals := map[key][]float64{}
	trials := map[[2]string]int{}
	errs := map[[2]string]int{}
	var scens, systems []string
	metrics := map[string][]string{}
	for _, r := range results {
		if !slices.Contains(scens, r.Scenario) {
			scens = append(scens, r.Scenario)
		}
		if !slices.Contains(systems, r.System) {
			systems = append(systems, r.System)
		}
		trials[[2]string{r.Scenario, r.System}]++
		if r.Error != "" {
			errs[[2]string{r.Scenario, r.System}]++
		}
		for m, v := range r.Metrics {
			k := key{r.Scenario, r.System, m}
			vals[k] = append(vals[k], v)
			if !slices.Contains(metrics[r.Scenario], m) {
				metrics[r.Scenario] = append(metrics[r.Scenario], m)
			}
		}
	}
	for _, sc := range scens {
		sort.Strings(metrics[sc])
		for _, sys := range systems {
			for _, m := range metrics[sc] {
				v := vals[key{sc, sys, m}]
				if len(v) == 0 {
					continue
				}
				h.emit(map[string]any{"type": "summary", "scenario": sc, "system": sys, "metric": m,
					"median": round3(median(v)), "max": round3(maxOf(v)), "n": len(v),
					"trials": trials[[2]string{sc, sys}]})
			}
		}
	}

	if len(results) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "== membership: median / max over trials (ms, MiB, %, B/s as named); errors = trials that hit a cap or failed ==")
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "scenario\tmetric\t%s\n", strings.Join(systems, "\t"))
		for _, sc := range scens {
			for _, m := range metrics[sc] {
				row := []string{sc, m}
				for _, sys := range systems {
					v := vals[key{sc, sys, m}]
					t := trials[[2]string{sc, sys}]
					switch {
					case t == 0:
						row = append(row, "-")
					case len(v) == 0:
						row = append(row, "n/a")
					default:
						cell := fmtNum(median(v)) + " / " + fmtNum(maxOf(v))
						if len(v) < t {
							cell += fmt.Sprintf(" (n=%d)", len(v))
						}
						row = append(row, cell)
					}
				}
				fmt.Fprintln(tw, strings.Join(row, "\t"))
			}
			row := []string{sc, "errors"}
			for _, sys := range systems {
				t := trials[[2]string{sc, sys}]
				if t == 0 {
					row = append(row, "-")
				} else {
					row = append(row, fmt.Sprintf("%d/%d", errs[[2]string{sc, sys}], t))
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
	if len(rpc) > 0 {
		h.printRPCTable(w, rpc)
	}
}
