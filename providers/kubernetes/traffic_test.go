package kubernetes

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func ref(name string, port int32, weight *int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(port))},
		Weight:                 weight,
	}}
}

type weight struct {
	name string
	w    int32
}

func weightsOf(r *gwv1.HTTPRoute) [][]weight {
	var out [][]weight
	for _, rule := range r.Spec.Rules {
		var ws []weight
		for _, b := range rule.BackendRefs {
			ws = append(ws, weight{string(b.Name), ptr.Deref(b.Weight, -1)})
		}
		out = append(out, ws)
	}
	return out
}

func TestWeights(t *testing.T) {
	g := Gateway{HTTPRoute: "checkout", StableService: "checkout", CanaryService: "checkout-canary", Port: 80}
	route := &gwv1.HTTPRoute{Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{
		{BackendRefs: []gwv1.HTTPBackendRef{ref("checkout", 80, nil)}},
		{BackendRefs: []gwv1.HTTPBackendRef{ref("other", 80, nil)}},
		{BackendRefs: []gwv1.HTTPBackendRef{ref("checkout", 8080, nil)}}, // another port: not ours
	}}}

	changed, rules := Weights(route, "shop", g, 25, true)
	assert.True(t, changed)
	assert.Equal(t, 1, rules)
	assert.Equal(t, [][]weight{{{"checkout", 75}, {"checkout-canary", 25}}, {{"other", -1}}, {{"checkout", -1}}}, weightsOf(route))
	assert.Equal(t, gwv1.PortNumber(80), *route.Spec.Rules[0].BackendRefs[1].Port)

	changed, _ = Weights(route, "shop", g, 25, true)
	assert.False(t, changed, "the same percent again changes nothing")

	changed, _ = Weights(route, "shop", g, 100, true)
	assert.True(t, changed)
	assert.Equal(t, []weight{{"checkout", 0}, {"checkout-canary", 100}}, weightsOf(route)[0])

	changed, _ = Weights(route, "shop", g, 0, false)
	assert.True(t, changed)
	assert.Equal(t, []weight{{"checkout", 100}}, weightsOf(route)[0], "the canary's backendRef is removed")

	other := "elsewhere"
	foreign := &gwv1.HTTPRoute{Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{ref("checkout", 80, nil)}}}}}
	foreign.Spec.Rules[0].BackendRefs[0].Namespace = ptr.To(gwv1.Namespace(other))
	_, rules = Weights(foreign, "shop", g, 5, true)
	assert.Zero(t, rules, "a Service of the same name in another namespace is not the stable Service")
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		total          int32
		percent        int
		canary, stable int32
	}{
		{4, 0, 0, 4}, {4, 1, 1, 3}, {4, 25, 1, 3}, {4, 26, 2, 2}, {4, 50, 2, 2}, {4, 100, 4, 0},
		{10, 5, 1, 9}, {10, 33, 4, 6}, {1, 1, 1, 0}, {3, 50, 2, 1}, {0, 50, 0, 0},
	} {
		c, s := Split(tc.total, tc.percent)
		assert.Equal(t, [2]int32{tc.canary, tc.stable}, [2]int32{c, s}, "Split(%d, %d)", tc.total, tc.percent)
		assert.Equal(t, max(tc.total, 0), c+s, "capacity is kept")
	}
}
