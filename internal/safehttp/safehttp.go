// Package safehttp is the HTTP client Shepherd's providers share for requests whose destination a spec
// names: response bodies are capped, and a redirect to another origin carries no credentials.
//
// It is a leaf package: the standard library only.
package safehttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBody bounds a response body read through Client (a Prometheus answer, an error page).
const MaxBody = 8 << 20

// maxRedirects is net/http's own default.
const maxRedirects = 10

// ErrBodyTooLarge is returned (wrapped) by a response body read past its limit.
var ErrBodyTooLarge = errors.New("response body is larger than the limit")

// Client is http.DefaultClient with LimitBody(MaxBody) and CheckRedirect.
var Client = &http.Client{Transport: LimitBody(http.DefaultTransport, MaxBody), CheckRedirect: CheckRedirect}

// safeHeaders are the request headers that may follow a redirect to another origin; everything else
// (Authorization, Cookie, headers filled from headerEnv such as X-Api-Key) is dropped, since any of them
// may be a credential meant for the first server only.
var safeHeaders = []string{"Accept", "Accept-Encoding", "Content-Type", "User-Agent", "Idempotency-Key", "X-Shepherd-Event"}

// CheckRedirect follows up to 10 redirects; one to another origin (scheme, host or port) goes without any
// header but the safe ones. net/http itself drops only Authorization, Cookie and WWW-Authenticate, and
// only when the host name changes.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme == first.Scheme && req.URL.Host == first.Host {
		return nil
	}
	kept := http.Header{}
	for _, h := range safeHeaders {
		if v, ok := req.Header[h]; ok {
			kept[h] = v
		}
	}
	req.Header = kept
	return nil
}

// LimitBody wraps rt so that every response body fails with ErrBodyTooLarge once more than max bytes
// are read from it: the reader gets an error, never a silently cut document.
func LimitBody(rt http.RoundTripper, max int64) http.RoundTripper {
	return limitTransport{rt: rt, max: max}
}

type limitTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

type limitedBody struct {
	rc        io.ReadCloser
	left, max int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte tells a body of exactly max bytes from a longer one.
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n == 0 {
			return 0, err // io.EOF: the body was exactly max bytes
		}
		return 0, fmt.Errorf("%w of %d bytes", ErrBodyTooLarge, b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
