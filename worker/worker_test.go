package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/shepherd-release/shepherd/config"
)

func TestMissingSearchAttributesSayHowToCreateThem(t *testing.T) {
	err := missingAttributes("releases", map[string]enumspb.IndexedValueType{
		"ReleaseService": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"ReleasePhase":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	})
	var missing *MissingAttributesError
	require.True(t, errors.As(err, &missing))
	assert.Equal(t, []string{"ReleaseEnvironment", "ReleaseVersion", "ReleaseTrafficPercent"}, missing.Missing)
	assert.Equal(t, "temporal operator search-attribute create --namespace releases --name ReleaseEnvironment --type Keyword "+
		"--name ReleaseVersion --type Keyword --name ReleaseTrafficPercent --type Int", missing.Command)
	assert.Contains(t, err.Error(), "without them every release would stall")
}

func TestSearchAttributeOfWrongTypeIsNamed(t *testing.T) {
	have := map[string]enumspb.IndexedValueType{}
	for _, sa := range []string{"ReleaseService", "ReleaseEnvironment", "ReleaseVersion", "ReleasePhase"} {
		have[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	have["ReleaseTrafficPercent"] = enumspb.INDEXED_VALUE_TYPE_TEXT
	err := missingAttributes("default", have)
	assert.ErrorContains(t, err, "ReleaseTrafficPercent is Text, want Int")
	have["ReleaseTrafficPercent"] = enumspb.INDEXED_VALUE_TYPE_INT
	assert.NoError(t, missingAttributes("default", have))
}

func TestDevServerFlagsRegisterEveryAttribute(t *testing.T) {
	assert.Equal(t, "--search-attribute ReleaseService=Keyword --search-attribute ReleaseEnvironment=Keyword "+
		"--search-attribute ReleaseVersion=Keyword --search-attribute ReleasePhase=Keyword "+
		"--search-attribute ReleaseTrafficPercent=Int", DevServerFlags())
}

func TestOptionsFollowTheTuning(t *testing.T) {
	o := Options(config.Tuning{WorkflowTaskPollers: 6, MaxConcurrentActivities: 3000}, time.Minute)
	assert.Equal(t, 6, o.MaxConcurrentWorkflowTaskPollers)
	assert.Equal(t, config.DefaultTuning.ActivityTaskPollers, o.MaxConcurrentActivityTaskPollers)
	assert.Equal(t, config.DefaultTuning.MaxConcurrentWorkflowTasks, o.MaxConcurrentWorkflowTaskExecutionSize)
	assert.Equal(t, 3000, o.MaxConcurrentActivityExecutionSize)
	assert.Equal(t, config.DefaultTuning.MaxConcurrentLocalActivities, o.MaxConcurrentLocalActivityExecutionSize)
	assert.Equal(t, time.Minute, o.WorkerStopTimeout)
}

// The sticky cache is the process's: a second worker asking for another size is refused, the same size
// is shared, and once every worker is gone a new size may be set.
func TestStickyCacheIsOnePerProcess(t *testing.T) {
	release1, err := acquireStickyCache(500)
	require.NoError(t, err)
	release2, err := acquireStickyCache(500)
	require.NoError(t, err)
	_, err = acquireStickyCache(800)
	assert.ErrorContains(t, err, "worker.stickyCacheSize 800: the sticky workflow cache belongs to the process and a worker in it runs with 500")
	release1()
	release1() // idempotent
	_, err = acquireStickyCache(800)
	assert.Error(t, err, "one worker still holds the cache")
	release2()
	release3, err := acquireStickyCache(800)
	require.NoError(t, err)
	release3()
}

func TestBuildCarriesTheTuning(t *testing.T) {
	cfg, err := config.Parse([]byte("worker: {activityTaskPollers: 3}"))
	require.NoError(t, err)
	p, err := Build(cfg, BuildOptions{})
	require.NoError(t, err)
	assert.Equal(t, 3, p.Tuning.ActivityTaskPollers)
	assert.Equal(t, config.DefaultTuning.StickyCacheSize, p.Tuning.StickyCacheSize)
}
