package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HeaderBackend is set by the proxy on every answer: the version the request was sent to.
const HeaderBackend = "X-Shepherd-Backend"

// loadMaxInFlight bounds the load generator's concurrent requests; when they are all busy (slow canary),
// ticks are dropped rather than queued, so load never piles up.
const loadMaxInFlight = 32

// splitter decides stable or canary per request. It spreads weight % of requests evenly (error diffusion)
// rather than drawing at random, so a 1 % canary gets exactly 1 request in 100 even at low traffic.
type splitter struct{ acc int }

func (s *splitter) next(weight int) bool {
	if weight <= 0 {
		return false
	}
	s.acc += weight
	if s.acc >= 100 {
		s.acc -= 100
		return true
	}
	return false
}

type backendKey struct{}

// backend is where one proxied request goes.
type backend struct {
	addr, service, version, path string
}

// newProxy is the weighted reverse proxy: /{service}/rest goes to rest on the stable or canary instance of
// service; with exactly one service in the fleet, other paths go to it unchanged.
func (c *controller) newProxy() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			b := pr.In.Context().Value(backendKey{}).(backend)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", b.addr
			pr.Out.URL.Path, pr.Out.URL.RawPath = b.path, ""
			pr.Out.Host = ""
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   loadMaxInFlight,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			b, _ := r.Context().Value(backendKey{}).(backend)
			writeError(w, http.StatusBadGateway, fmt.Sprintf("proxy: %s %s at %s did not answer: %v (see GET /v1/services/%s "+
				"on the admin API)", b.service, b.version, b.addr, err, b.service))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := c.route(r.URL.Path)
		if err != nil {
			status := http.StatusInternalServerError
			var ae *apiError
			if errors.As(err, &ae) {
				status = ae.status
			}
			writeError(w, status, err.Error())
			return
		}
		w.Header().Set(HeaderBackend, b.version)
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, b)))
	})
}

// route picks the backend for a request path.
func (c *controller) route(path string) (backend, error) {
	first, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	rest = "/" + rest
	c.mu.Lock()
	defer c.mu.Unlock()
	svc := c.services[first]
	if svc == nil {
		if len(c.services) != 1 {
			names := slices.Sorted(maps.Keys(c.services))
			return backend{}, errorf(http.StatusNotFound, "proxy: no service %q in the fleet: send requests to "+
				"/{service}/ (services: %s)", first, strings.Join(names, ", "))
		}
		for _, s := range c.services {
			svc = s
		}
		rest = path
	}
	inst := svc.Instances[svc.Stable]
	if svc.Canary != "" && svc.split.next(svc.Weight) {
		if ci := svc.Instances[svc.Canary]; ci != nil {
			inst = ci
		}
	}
	if inst == nil || inst.Port == 0 {
		return backend{}, errorf(http.StatusServiceUnavailable, "proxy: service %q has no running version: bootstrap it "+
			"on the admin API", svc.Name)
	}
	return backend{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port)),
		service: svc.Name,
		version: inst.Version,
		path:    rest,
	}, nil
}

// runLoad sends LoadRPS requests per second per service through the proxy at proxyAddr (loopback) until
// ctx ends, each with a fresh request id so fractional flag rollouts spread over them.
func (c *controller) runLoad(ctx context.Context, proxyAddr string) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: loadMaxInFlight}}
	defer client.CloseIdleConnections()
	sem := make(chan struct{}, loadMaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(time.Duration(float64(time.Second) / c.cfg.LoadRPS))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, name := range c.servingNames() {
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxyAddr+"/"+name+"/", nil)
				if err != nil {
					return
				}
				req.Header.Set("X-Request-Id", "load-"+strconv.FormatUint(rand.Uint64(), 36))
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			})
		}
	}
}

// servingNames are the services that have a stable version.
func (c *controller) servingNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name, svc := range c.services {
		if svc.Stable != "" {
			out = append(out, name)
		}
	}
	return out
}
