// Command benchtable reads the output of `go test -bench` (make bench) and prints one
// table: for every measure, its value, the baseline measured in the same run, their
// ratio, and the target, met or not. Each figure is a ratio to a baseline of the same
// run because these machines are noisy; the load average before and after the run is
// printed with the table.
//
//	go test -run '^$' -bench . ./... | tee bench.txt
//	go run ./cmd/benchtable -load-before "$(cat /proc/loadavg)" bench.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	loadBefore := flag.String("load-before", "", "the load average (/proc/loadavg) when the benchmarks started")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: benchtable [-load-before LOADAVG] [bench-output-file]  (stdin without a file)")
		flag.PrintDefaults()
	}
	flag.Parse()
	in := io.Reader(os.Stdin)
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	runs, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	after, _ := os.ReadFile("/proc/loadavg")
	write(os.Stdout, runs, measures, strings.TrimSpace(*loadBefore), strings.TrimSpace(string(after)))
}

// results are the metrics of each benchmark, by its name without the -GOMAXPROCS
// suffix ("BenchmarkJobs/1M/check_first"), by unit ("ns/op", "scan_ms").
type results map[string]map[string]float64

// parse reads benchmark lines: a name, the iterations, then value and unit pairs.
// A benchmark that ran more than once (-count) keeps its last line.
func parse(r io.Reader) (results, error) {
	out := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// A result line is a name, the iterations, then pairs; a benchmark's own log
		// line starts with its name and a colon.
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || strings.HasSuffix(f[0], ":") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a benchmark's log line, not its result
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a number", name, f[i])
			}
			m[f[i+1]] = v
		}
		out[name] = m
	}
	return out, sc.Err()
}

// get is one metric of one benchmark.
func (r results) get(bench, unit string) (float64, bool) {
	v, ok := r[bench][unit]
	return v, ok
}

// A measure is one row: a value, its baseline and what the pair must satisfy.
type measure struct {
	What     string
	Value    ref
	Baseline ref
	// Ratio, when set, is the benchmark's own ratio metric; else Value ÷ Baseline.
	Ratio ref
	// Targets, each met or not; none for a figure reported for its own sake.
	Targets []target
}

// ref names a metric: a benchmark, a unit, how to show it (scale multiplies, then
// Show is the unit printed), and what it is when it is a baseline.
type ref struct {
	Bench, Unit string
	Scale       float64
	Show        string
	Label       string
}

func (f ref) set() bool { return f.Bench != "" }

func (f ref) value(r results) (float64, bool) {
	v, ok := r.get(f.Bench, f.Unit)
	if ok && f.Scale != 0 {
		v *= f.Scale
	}
	return v, ok
}

// target is a bound on the value or on the ratio.
type target struct {
	OnRatio bool
	Max     bool // at most Limit; else at least
	Limit   float64
}

func (t target) String() string {
	op := "≥"
	if t.Max {
		op = "≤"
	}
	if t.OnRatio {
		return fmt.Sprintf("%s %s×", op, num(t.Limit))
	}
	return op + " " + num(t.Limit)
}

func (t target) met(v, ratio float64) bool {
	x := v
	if t.OnRatio {
		x = ratio
	}
	if t.Max {
		return x <= t.Limit
	}
	return x >= t.Limit
}

func write(w io.Writer, r results, rows []measure, loadBefore, loadAfter string) {
	fmt.Fprintln(w, "| measure | value | baseline, same run | ratio | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	met, missed, absent := 0, 0, 0
	for _, m := range rows {
		v, ok := m.Value.value(r)
		if !ok {
			absent++
			fmt.Fprintf(w, "| %s | not measured (%s %s) | | | %s |\n", m.What, m.Value.Bench, m.Value.Unit, targets(m.Targets))
			continue
		}
		base, ratio := "", ""
		var rv float64
		haveRatio := false
		if m.Baseline.set() {
			if b, ok := m.Baseline.value(r); ok {
				base = fmt.Sprintf("%s %s %s", m.Baseline.Label, num(b), m.Baseline.Show)
				if b != 0 {
					rv, haveRatio = v/b, true
				}
			}
		}
		if m.Ratio.set() {
			rv, haveRatio = m.Ratio.value(r)
		}
		if haveRatio {
			ratio = num(rv) + "×"
		}
		var verdicts []string
		for _, t := range m.Targets {
			switch {
			case t.OnRatio && !haveRatio:
				verdicts = append(verdicts, t.String()+" ?")
			case t.met(v, rv):
				met++
				verdicts = append(verdicts, t.String()+" ✔")
			default:
				missed++
				verdicts = append(verdicts, t.String()+" ✘")
			}
		}
		fmt.Fprintf(w, "| %s | %s %s | %s | %s | %s |\n", m.What, num(v), m.Value.Show, base, ratio, strings.Join(verdicts, ", "))
	}
	fmt.Fprintf(w, "\ntargets met: %d, missed: %d; measures not in this run: %d\n", met, missed, absent)
	if loadBefore != "" || loadAfter != "" {
		fmt.Fprintf(w, "load average (1, 5, 15 min) before the run: %s; after: %s\n", field3(loadBefore), field3(loadAfter))
	}
}

func targets(ts []target) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// field3 is the three load averages of a /proc/loadavg line.
func field3(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	if len(f) == 0 {
		return "unknown"
	}
	return strings.Join(f, " ")
}

// num shows a figure with three significant digits, and thousands separated.
func num(v float64) string {
	switch a := abs(v); {
	case a >= 1000:
		return group(strconv.FormatFloat(v, 'f', 0, 64))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
