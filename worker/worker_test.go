package worker

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
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
