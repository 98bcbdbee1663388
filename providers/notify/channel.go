package notify

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/shepherd-release/shepherd/providers"
)

// Channel is one configured notification channel (a Slack or generic webhook). Build it with New.
type Channel struct {
	cfg Config
}

var _ providers.Describer = (*Channel)(nil)

// New checks cfg and returns the channel; the URL variable is read on each Send, so a rotated URL is
// picked up without a restart.
func New(cfg Config) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return &Channel{cfg: cfg}, nil
}

// Wants reports whether the channel sends events of kind k.
func (c *Channel) Wants(k EventKind) bool { return c.cfg.Wants(k) }

// Send delivers event with idempotencyKey; see the package function Send.
func (c *Channel) Send(ctx context.Context, event Event, idempotencyKey string) error {
	return Send(ctx, c.cfg, event, idempotencyKey)
}

// Describe says where the channel posts, without the URL (webhook URLs are secrets).
func (c *Channel) Describe() providers.Description {
	where := "the URL in environment variable " + c.cfg.URLEnv
	if c.cfg.URL != "" {
		where = "a webhook on " + hostOf(c.cfg.URL)
	}
	events := "every event"
	if len(c.cfg.Events) > 0 {
		names := make([]string, len(c.cfg.Events))
		for i, e := range c.cfg.Events {
			names[i] = string(e)
		}
		events = strings.Join(names, ", ")
	}
	kind := "JSON webhook"
	if c.cfg.Type == TypeSlack {
		kind = "Slack incoming webhook"
	}
	d := providers.Description{Type: c.cfg.Type, Summary: fmt.Sprintf("%s: %s, posted to %s", kind, events, where)}
	for _, e := range c.cfg.Events {
		d.Events = append(d.Events, string(e))
	}
	if c.cfg.URLEnv != "" {
		d.Prerequisites = []string{"the workers have the webhook URL in $" + c.cfg.URLEnv}
	}
	return d
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return "(unparseable URL)"
}
