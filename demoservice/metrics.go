package demoservice

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names follow the conventions documented for Shepherd's default checks.
const (
	// MetricRequests counts answered GET / requests by service, version and status code.
	MetricRequests = "http_requests_total"
	// MetricDuration is the GET / latency histogram by service and version.
	MetricDuration = "http_request_duration_seconds"
	// MetricFeatureEnabled is the share of requests (0..1) for which a flag evaluates on, by flag.
	MetricFeatureEnabled = "demo_feature_enabled"
)

// DurationBuckets resolve 50ms..2s finely, where the default p99 ≤ 500ms check decides.
var DurationBuckets = []float64{.005, .01, .025, .05, .075, .1, .15, .2, .25, .3, .4, .5, .6, .75, 1, 1.25, 1.5, 2, 3, 5}

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration prometheus.Observer
	feature  *prometheus.GaugeVec
	service  string
	version  string
}

func newMetrics(service, version string) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests, Help: "HTTP requests answered by GET /, by status code.",
		}, []string{"service", "version", "code"}),
		feature: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricFeatureEnabled, Help: "Share of requests (0..1) for which the feature flag evaluates on.",
		}, []string{"flag"}),
		service: service,
		version: version,
	}
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricDuration, Help: "Latency of GET / in seconds.", Buckets: DurationBuckets,
	}, []string{"service", "version"})
	m.duration = dur.WithLabelValues(service, version)
	// Start both series at zero: with no 5xx series at all the default error-rate query returns no data,
	// which Shepherd treats as inconclusive instead of as a 0 % error rate.
	m.requests.WithLabelValues(service, version, "200")
	m.requests.WithLabelValues(service, version, "500")
	m.feature.WithLabelValues(flagNewCheckout)
	m.registry.MustRegister(m.requests, dur, m.feature,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(code int, d time.Duration) {
	m.requests.WithLabelValues(m.service, m.version, strconv.Itoa(code)).Inc()
	m.duration.Observe(d.Seconds())
}
