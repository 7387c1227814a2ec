package cometchat

import (
	"context"
	"time"
)

// SetSleep replaces how c waits: the retry backoff, the rate-limit pause
// and the wait for a pacing token. Tests record the waits instead of
// sleeping through them.
func (c *Client) SetSleep(sleep func(ctx context.Context, d time.Duration) error) { c.sleep = sleep }
