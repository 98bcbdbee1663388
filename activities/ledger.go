package activities

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Ledger records completed side effects by key (release ID + step).
type Ledger interface {
	// Done reports whether key was marked.
	Done(key string) (bool, error)
	// Mark records key as done.
	Mark(key string) error
}

// FileLedger keeps the ledger as one small file per key in Dir. It is local to a worker's host: workers
// that share a task queue across hosts should share Dir (e.g. a network volume) for the guarantee to hold
// across hosts; providers are idempotent as a second line of defence.
type FileLedger struct {
	Dir string
}

func (l FileLedger) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(l.Dir, hex.EncodeToString(sum[:16]))
}

// Done reports whether key was marked.
func (l FileLedger) Done(key string) (bool, error) {
	_, err := os.Stat(l.path(key))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Mark records key as done, durably (write to a temporary file, sync, rename).
func (l FileLedger) Mark(key string) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("creating ledger directory %s: %w", l.Dir, err)
	}
	tmp, err := os.CreateTemp(l.Dir, ".mark-*")
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintf(tmp, "%s\n%s\n", key, time.Now().UTC().Format(time.RFC3339Nano))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), l.path(key))
}
