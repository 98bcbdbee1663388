// Command ui-screenshot opens a release's page in the Temporal web UI with headless Chromium, checks
// that the page tells the release's story (the texts given with -want appear on it), and saves a
// screenshot. It speaks the Chrome DevTools protocol over a WebSocket with the standard library only, so
// it needs nothing but a Chromium binary; it is a tool for docs/, never run in CI.
//
//	go run ./scripts/ui-screenshot -url http://localhost:8233/namespaces/default/workflows/ID/RUN \
//	  -want "Last decision" -want "shepherd approve" -out docs/images/release-page.png
//
// scripts/ui-screenshot.sh runs the whole thing: a dev stack, a release waiting at its gate, this.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

type wants []string

func (w *wants) String() string     { return strings.Join(*w, ", ") }
func (w *wants) Set(v string) error { *w = append(*w, v); return nil }

func main() {
	var (
		page, out, chromium, click, show string
		width, height                    int
		timeout                          time.Duration
		want                             wants
	)
	flag.StringVar(&page, "url", "", "the release's page in the Temporal web UI")
	flag.StringVar(&out, "out", "release-page.png", "where to write the PNG")
	flag.StringVar(&chromium, "chromium", "chromium", "Chromium binary")
	flag.StringVar(&click, "click", "", "click the first button or tab whose text is this (or css:SELECTOR) before the screenshot")
	flag.StringVar(&show, "eval", "", "also print the value of this JavaScript expression (to check what the page offers)")
	flag.IntVar(&width, "width", 1280, "viewport width")
	flag.IntVar(&height, "height", 900, "viewport height")
	flag.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	flag.Var(&want, "want", "text the page must show (repeatable)")
	flag.Parse()
	if page == "" {
		log.Fatal("-url is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := run(ctx, chromium, page, out, click, show, width, height, want); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, chromium, page, out, click, show string, width, height int, want []string) error {
	dir, err := os.MkdirTemp("", "ui-screenshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir="+dir, "--remote-debugging-port=0",
		fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..." once it is up.
	listening := regexp.MustCompile(`DevTools listening on (ws://[^\s]+)`)
	sc := bufio.NewScanner(stderr)
	var browserWS string
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			browserWS = m[1]
			break
		}
	}
	if browserWS == "" {
		return errors.New("chromium did not start its DevTools endpoint")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	u, _ := url.Parse(browserWS)
	ws, err := pageTarget(ctx, u.Host)
	if err != nil {
		return err
	}
	c, err := dialWS(ctx, ws)
	if err != nil {
		return err
	}
	defer c.Close()

	if _, err := c.call("Page.enable", nil); err != nil {
		return err
	}
	if _, err := c.call("Page.navigate", map[string]any{"url": page}); err != nil {
		return err
	}
	// The UI is a single-page app: wait until it has rendered what to click, then every wanted text.
	if click != "" {
		js := fmt.Sprintf(`(() => { const t = %q; for (const el of document.querySelectorAll('button, [role=tab], a')) {
			if (el.innerText.trim() === t) { el.click(); return 'clicked'; } } return 'none'; })()`, click)
		if sel, ok := strings.CutPrefix(click, "css:"); ok {
			js = fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return 'none'; el.click(); return 'clicked'; })()`, sel)
		}
		if err := poll(ctx, func() bool { got, err := c.eval(js); return err == nil && got == "clicked" }); err != nil {
			return fmt.Errorf("nothing to click named %q: %w", click, err)
		}
	}
	text := ""
	if err := poll(ctx, func() bool {
		// The UI renders Markdown (summary, details) in same-origin iframes: read those too.
		text, err = c.eval(`[document, ...Array.from(document.querySelectorAll('iframe')).map(f => f.contentDocument)]
			.filter(d => d && d.body).map(d => d.body.innerText).join('\n')`)
		return err == nil && containsAll(text, want)
	}); err != nil {
		return fmt.Errorf("the page never showed all of %q; it shows:\n%s", want, text)
	}
	time.Sleep(1500 * time.Millisecond) // let the last requests render (fonts, icons)
	if show != "" {
		v, err := c.eval(show)
		if err != nil {
			return err
		}
		fmt.Println(v)
	}
	res, err := c.call("Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return err
	}
	var shot struct {
		Data []byte `json:"data"`
	}
	if err := json.Unmarshal(res, &shot); err != nil {
		return err
	}
	if err := os.WriteFile(out, shot.Data, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes; the page shows every wanted text\n", out, len(shot.Data))
	return nil
}

// poll checks cond every half second until it holds or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// pageTarget returns the WebSocket URL of the browser's first page.
func pageTarget(ctx context.Context, host string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/json/list", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var targets []struct{ Type, WebSocketDebuggerURL string }
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return "", err
	}
	for _, t := range targets {
		if t.Type == "page" {
			return t.WebSocketDebuggerURL, nil
		}
	}
	return "", errors.New("chromium has no page")
}

// cdp is a DevTools protocol connection: one call at a time, events skipped.
type cdp struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

func (c *cdp) Close() error { return c.conn.Close() }

func (c *cdp) call(method string, params any) (json.RawMessage, error) {
	c.id++
	msg, _ := json.Marshal(map[string]any{"id": c.id, "method": method, "params": params})
	if err := c.write(msg); err != nil {
		return nil, err
	}
	for {
		b, err := c.read()
		if err != nil {
			return nil, err
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &resp) != nil || resp.ID != c.id {
			continue // an event
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, resp.Error.Message)
		}
		return resp.Result, nil
	}
}

func (c *cdp) eval(expr string) (string, error) {
	res, err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return "", err
	}
	var v struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return "", err
	}
	s, _ := v.Result.Value.(string)
	return s, nil
}

// dialWS opens a client WebSocket (RFC 6455) to a ws:// URL.
func dialWS(ctx context.Context, raw string) (*cdp, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key))
	r := bufio.NewReaderSize(conn, 1<<16)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("websocket upgrade: %s", resp.Status)
	}
	return &cdp{conn: conn, r: r}, nil
}

// write sends one masked text frame.
func (c *cdp) write(p []byte) error {
	hdr := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 0x80|127), uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	hdr = append(hdr, mask...)
	body := make([]byte, len(p))
	for i := range p {
		body[i] = p[i] ^ mask[i%4]
	}
	_, err := c.conn.Write(append(hdr, body...))
	return err
}

// read returns the next whole message (continuation frames joined; control frames skipped).
func (c *cdp) read() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch op {
		case 0x8:
			return nil, errors.New("websocket closed")
		case 0x9, 0xA:
			continue
		}
		msg = append(msg, p...)
		if fin {
			return msg, nil
		}
	}
}
