package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Readings of the scale benchmark: process CPU and memory from /proc, and metrics from a worker's
// /metrics.

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// procStat reads utime, stime, cutime, cstime (in seconds) and the parent's pid of a process.
func procStat(pid int) (self, children float64, ppid int, ok bool) {
	if pid <= 0 {
		return 0, 0, 0, false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(k int) float64 { v, _ := strconv.ParseFloat(f[k], 64); return v }
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	ppid, _ = strconv.Atoi(f[1])
	return (n(11) + n(12)) / clockTicks, (n(13) + n(14)) / clockTicks, ppid, true
}

// cpuSeconds is a process's CPU time, with its reaped children's when children is set.
func cpuSeconds(pid int, children bool) float64 {
	self, kids, _, _ := procStat(pid)
	if children {
		return self + kids
	}
	return self
}

// treeCPU is the CPU time of a process, its reaped children and its live children: PostgreSQL's
// postmaster and its backends.
func treeCPU(pid int) float64 {
	total := cpuSeconds(pid, true)
	if pid <= 0 {
		return total
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if self, _, ppid, ok := procStat(child); ok && ppid == pid {
			total += self
		}
	}
	return total
}

// rss is a process's resident set in bytes (VmRSS), 0 when unknown.
func rss(pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadAverage is the machine's 1-minute load average.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// families are the metric families of one scrape.
type families map[string]*dto.MetricFamily

func parseFamilies(r io.Reader) (families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing worker metrics: %w", err)
	}
	return m, nil
}

func hasLabel(m *dto.Metric, name, value string) bool {
	if name == "" {
		return true
	}
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// counter sums a counter's series that have label name=value (every series when name is "").
func (f families) counter(metric, name, value string) float64 {
	var sum float64
	for _, m := range f[metric].GetMetric() {
		if hasLabel(m, name, value) {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// gauge sums a gauge's series with label name=value.
func (f families) gauge(metric, name, value string) float64 {
	var sum float64
	for _, m := range f[metric].GetMetric() {
		if hasLabel(m, name, value) {
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// histogram sums every series of a histogram.
func (f families) histogram(metric string) Histogram {
	var h Histogram
	for _, m := range f[metric].GetMetric() {
		hm := m.GetHistogram()
		var one Histogram
		one.Count, one.Sum = hm.GetSampleCount(), hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			one.Bounds = append(one.Bounds, b.GetUpperBound())
			one.Cumulative = append(one.Cumulative, b.GetCumulativeCount())
		}
		h = h.add(one)
	}
	return h
}

// Histogram is a Prometheus histogram's cumulative buckets (the +Inf bucket is Count).
type Histogram struct {
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

// add sums two histograms with the same bounds (either may be empty).
func (h Histogram) add(o Histogram) Histogram {
	if len(h.Bounds) == 0 && h.Count == 0 {
		return o.clone()
	}
	if len(o.Bounds) == 0 && o.Count == 0 {
		return h
	}
	out := h.clone()
	out.Count += o.Count
	out.Sum += o.Sum
	for i := range out.Bounds {
		if i < len(o.Cumulative) && o.Bounds[i] == out.Bounds[i] {
			out.Cumulative[i] += o.Cumulative[i]
		}
	}
	return out
}

// sub is h minus an earlier reading o of the same histogram.
func (h Histogram) sub(o Histogram) Histogram {
	out := h.clone()
	out.Count -= min(o.Count, out.Count)
	out.Sum -= o.Sum
	for i := range out.Bounds {
		if i < len(o.Cumulative) && o.Bounds[i] == out.Bounds[i] {
			out.Cumulative[i] -= min(o.Cumulative[i], out.Cumulative[i])
		}
	}
	return out
}

func (h Histogram) clone() Histogram {
	h.Bounds, h.Cumulative = slices.Clone(h.Bounds), slices.Clone(h.Cumulative)
	return h
}

// quantile estimates quantile q (0..1) as Prometheus's histogram_quantile does: linear within the
// bucket holding it. Above the last finite bound it returns +Inf. NaN when empty.
func (h Histogram) quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	lower, below := 0.0, uint64(0)
	for i, b := range h.Bounds {
		if math.IsInf(b, 1) {
			break
		}
		if float64(h.Cumulative[i]) >= rank {
			in := h.Cumulative[i] - below
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = b, h.Cumulative[i]
	}
	return math.Inf(1)
}

// maxBound is the upper bound of the highest non-empty bucket: the largest sample is at most this.
func (h Histogram) maxBound() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	for i, b := range h.Bounds {
		if h.Cumulative[i] == h.Count {
			return b
		}
	}
	return math.Inf(1)
}

func secondsText(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 1):
		return "> last bucket"
	}
	return durText(time.Duration(v * float64(time.Second)))
}

func (h Histogram) quantileText(q float64) string { return secondsText(h.quantile(q)) }

// maxText says the largest sample's bucket: "≤ 25ms".
func (h Histogram) maxText() string {
	v := h.maxBound()
	if math.IsNaN(v) || math.IsInf(v, 1) {
		return secondsText(v)
	}
	return "≤ " + secondsText(v)
}

// durText formats a duration with three significant digits.
func durText(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3gs", d.Seconds())
	}
}

func floats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " + ")
}
