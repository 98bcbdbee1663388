// Package virtualclock is a clock for tests of long-running activities (activities.Clock): a wait takes
// no wall time, so an hour's soak runs in microseconds.
package virtualclock

import (
	"context"
	"sync"
	"time"
)

// Clock starts at the time it is given. The zero value starts at the zero time.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	waited time.Duration
	// late is added to every wait: a busy worker that wakes up late.
	late time.Duration
}

// New returns a clock that reads start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock on by d (and by the lateness set with Late) at once, unless ctx has ended.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d = max(d, 0) + c.late
	c.now = c.now.Add(d)
	c.waited += d
	return nil
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Late makes every later wait last d longer than asked.
func (c *Clock) Late(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.late = d
}

// Waited is the time all waits took.
func (c *Clock) Waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waited
}
