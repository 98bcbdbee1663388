//go:build !unix

package flags

import (
	"context"
	"fmt"
	"sync"
)

// fileLocks serialises writers within this process where flock(2) is unavailable; writers in other
// processes are not excluded on such systems.
var fileLocks sync.Map

func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	v, _ := fileLocks.LoadOrStore(path, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("another writer holds %s: %w", path, ctx.Err())
	}
}
