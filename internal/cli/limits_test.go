package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An endless spec file (/dev/zero, a FIFO someone keeps writing to) is refused after MaxSpecBytes, not
// read into memory until the process dies.
func TestValidateRefusesAnEndlessSpecFile(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, _, errOut := run(t, "validate", "-f", "/dev/zero")
	runtime.ReadMemStats(&after)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "larger than the limit of 1048576 bytes")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "bytes allocated")
}

// A large regular file is refused by its size, before it is read.
func TestValidateRefusesALargeSpecFileBeforeReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	require.NoError(t, os.WriteFile(path, []byte("description: "+strings.Repeat("x", 2<<20)+"\n"), 0o644))
	code, _, errOut := run(t, "validate", "-f", path)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "is 2097166 bytes, larger than the limit of 1048576 bytes")
}
