package hosting

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bounds are the upper bounds of the latency histogram's buckets, in
// seconds: from 100µs, where a small answer on loopback lands, to 10s.
var bounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// codes are the status codes counted each in its own series; any other
// is counted as "other".
var codes = []int{200, 400, 401, 404, 405, 413, 415, 500, 503, 504}

// stats are the counters of one endpoint, updated with atomics only, so
// that counting costs a request no lock.
type stats struct {
	codes   [11]atomic.Uint64 // by index in codes, the last for other codes
	buckets [17]atomic.Uint64 // by index in bounds (not cumulative), the last for +Inf
	sum     atomic.Int64      // nanoseconds
}

func (s *stats) observe(status int, took time.Duration) {
	i := slices.Index(codes, status)
	if i < 0 {
		i = len(codes)
	}
	s.codes[i].Add(1)
	sec := took.Seconds()
	b := 0
	for b < len(bounds) && sec > bounds[b] {
		b++
	}
	s.buckets[b].Add(1)
	s.sum.Add(int64(took))
}

// metrics are a server's counters, written in Prometheus' text format
// (version 0.0.4).
type metrics struct {
	order     []string          // endpoint labels, in the order written
	endpoints map[string]*stats // read-only after newMetrics
	reloadsOK atomic.Uint64
	reloadsKO atomic.Uint64
}

func newMetrics(labels []string) *metrics {
	m := &metrics{order: labels, endpoints: map[string]*stats{}}
	for _, l := range labels {
		m.endpoints[l] = &stats{}
	}
	return m
}

// served is what the metrics say of the run being served.
type served struct {
	flow, run string
	loaded    time.Time
	ready     bool
}

// write writes every series.
func (m *metrics) write(w io.Writer, s served) error {
	b := bufio.NewWriter(w)
	b.WriteString("# HELP stepwise_service_requests_total Requests answered, by endpoint and status code.\n# TYPE stepwise_service_requests_total counter\n")
	for _, l := range m.order {
		st := m.endpoints[l]
		for i := range st.codes {
			code := "other"
			if i < len(codes) {
				code = strconv.Itoa(codes[i])
			}
			if n := st.codes[i].Load(); n > 0 {
				b.WriteString("stepwise_service_requests_total{endpoint=" + quote(l) + ",code=\"" + code + "\"} " + strconv.FormatUint(n, 10) + "\n")
			}
		}
	}
	b.WriteString("# HELP stepwise_service_request_duration_seconds Time from a request's arrival to its answer, by endpoint.\n# TYPE stepwise_service_request_duration_seconds histogram\n")
	for _, l := range m.order {
		st := m.endpoints[l]
		var cum uint64
		for i := range st.buckets {
			cum += st.buckets[i].Load()
			le := "+Inf"
			if i < len(bounds) {
				le = strconv.FormatFloat(bounds[i], 'g', -1, 64)
			}
			b.WriteString("stepwise_service_request_duration_seconds_bucket{endpoint=" + quote(l) + ",le=\"" + le + "\"} " + strconv.FormatUint(cum, 10) + "\n")
		}
		b.WriteString("stepwise_service_request_duration_seconds_sum{endpoint=" + quote(l) + "} " + float(time.Duration(st.sum.Load()).Seconds()) + "\n")
		b.WriteString("stepwise_service_request_duration_seconds_count{endpoint=" + quote(l) + "} " + strconv.FormatUint(cum, 10) + "\n")
	}
	b.WriteString("# HELP stepwise_service_reloads_total Loads of a newer run, by result.\n# TYPE stepwise_service_reloads_total counter\n")
	b.WriteString("stepwise_service_reloads_total{result=\"succeeded\"} " + strconv.FormatUint(m.reloadsOK.Load(), 10) + "\n")
	b.WriteString("stepwise_service_reloads_total{result=\"failed\"} " + strconv.FormatUint(m.reloadsKO.Load(), 10) + "\n")
	ready := "0"
	if s.ready {
		ready = "1"
	}
	b.WriteString("# HELP stepwise_service_ready Whether a run is loaded and served.\n# TYPE stepwise_service_ready gauge\nstepwise_service_ready " + ready + "\n")
	if s.ready {
		b.WriteString("# HELP stepwise_service_run_info The run served: its flow and run id.\n# TYPE stepwise_service_run_info gauge\n")
		b.WriteString("stepwise_service_run_info{flow=" + quote(s.flow) + ",run=" + quote(s.run) + "} 1\n")
		b.WriteString("# HELP stepwise_service_run_loaded_timestamp_seconds When the run served was loaded, in seconds since 1970.\n# TYPE stepwise_service_run_loaded_timestamp_seconds gauge\n")
		b.WriteString("stepwise_service_run_loaded_timestamp_seconds " + float(float64(s.loaded.UnixNano())/1e9) + "\n")
	}
	return b.Flush()
}

// quote quotes a label value as the text format wants: backslash, double
// quote and line feed escaped.
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

func float(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
