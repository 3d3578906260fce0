package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
)

// Metric names, exported for tests and dashboards.
const (
	MetricPods              = "minikubelet_pods"
	MetricContainerRestarts = "minikubelet_container_restarts_total"
	MetricPodStartDuration  = "minikubelet_pod_start_duration_seconds"
	MetricReconcileDuration = "minikubelet_reconcile_duration_seconds"
	MetricDBusCallDuration  = "minikubelet_dbus_call_duration_seconds"
)

// Histogram buckets.
var (
	// PodStartBuckets are the kubelet's pod start (SLI) buckets: from
	// half a second to an hour, dense where the 5 s SLO sits.
	PodStartBuckets = []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}
	// ReconcileBuckets are Prometheus' default buckets (the kubelet's pod
	// worker duration) extended to a minute for slow image pulls.
	ReconcileBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// DBusBuckets start below a millisecond: a healthy systemd answers in
	// well under one.
	DBusBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// podPhases are every v1 phase, so each has a series even at zero.
var podPhases = []v1.PodPhase{v1.PodPending, v1.PodRunning, v1.PodSucceeded, v1.PodFailed, v1.PodUnknown}

// Metrics is the node's metric set on its own registry (with the Go and
// process collectors, as the kubelet exposes them). The loop reports through
// its methods; the server serves Handler at /metrics. A nil *Metrics ignores
// every report, so code under test need not build one.
type Metrics struct {
	reg               *prometheus.Registry
	pods              *prometheus.GaugeVec
	restarts          *prometheus.CounterVec
	podStartDuration  prometheus.Histogram
	reconcileDuration *prometheus.HistogramVec
	dbusCallDuration  *prometheus.HistogramVec
}

// NewMetrics registers the metric set on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricPods,
			Help: "Number of pods on the node by status.phase.",
		}, []string{"phase"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricContainerRestarts,
			Help: "Container restarts by pod and container (restartCount increments).",
		}, []string{"namespace", "pod", "container"}),
		podStartDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricPodStartDuration,
			Help:    "Duration in seconds from the pod being seen in its manifest to all its containers running (image pulls included).",
			Buckets: PodStartBuckets,
		}),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricReconcileDuration,
			Help:    "Duration in seconds of one reconcile pass of one pod, by result (success, error).",
			Buckets: ReconcileBuckets,
		}, []string{"result"}),
		dbusCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricDBusCallDuration,
			Help:    "Duration in seconds of systemd D-Bus calls, by method and result (success, error).",
			Buckets: DBusBuckets,
		}, []string{"method", "result"}),
	}
	m.reg.MustRegister(m.pods, m.restarts, m.podStartDuration, m.reconcileDuration, m.dbusCallDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, p := range podPhases {
		m.pods.WithLabelValues(string(p)).Set(0)
	}
	return m
}

// Registry lets other packages register further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetPods recounts the pods-by-phase gauge from the full pod list (pods
// without a phase count as Pending, as the API server defaults them).
func (m *Metrics) SetPods(pods []v1.Pod) {
	if m == nil {
		return
	}
	counts := map[v1.PodPhase]int{}
	for i := range pods {
		ph := pods[i].Status.Phase
		if ph == "" {
			ph = v1.PodPending
		}
		counts[ph]++
	}
	for _, p := range podPhases {
		m.pods.WithLabelValues(string(p)).Set(float64(counts[p]))
	}
}

// ContainerRestarted counts one restart of a container.
func (m *Metrics) ContainerRestarted(namespace, pod, container string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(namespace, pod, container).Inc()
}

// ForgetPod drops a deleted pod's per-pod series.
func (m *Metrics) ForgetPod(namespace, pod string) {
	if m == nil {
		return
	}
	m.restarts.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "pod": pod})
}

// ObservePodStart records how long a pod took from desired to running.
func (m *Metrics) ObservePodStart(d time.Duration) {
	if m == nil {
		return
	}
	m.podStartDuration.Observe(d.Seconds())
}

// ObserveReconcile records one reconcile pass; err decides the result label.
func (m *Metrics) ObserveReconcile(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.reconcileDuration.WithLabelValues(result(err)).Observe(d.Seconds())
}

// ObserveDBusCall records one D-Bus method call (e.g. "StartTransientUnit").
func (m *Metrics) ObserveDBusCall(method string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.dbusCallDuration.WithLabelValues(method, result(err)).Observe(d.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}
