package approvals

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustFreeze(t *testing.T, f Freeze) Freeze {
	t.Helper()
	require.NoError(t, f.Validate("freezes[0]"))
	return f
}

func TestCalendarFreeze(t *testing.T) {
	from := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	fs := []Freeze{mustFreeze(t, Freeze{Name: "year end", Environments: []string{"production"}, From: from, To: from.Add(72 * time.Hour)})}
	assert.False(t, FreezeAt(fs, "production", from.Add(-time.Second)).Frozen)
	st := FreezeAt(fs, "production", from.Add(time.Hour))
	assert.Equal(t, FreezeState{Frozen: true, Name: "year end", Until: from.Add(72 * time.Hour)}, st)
	assert.False(t, FreezeAt(fs, "staging", from.Add(time.Hour)).Frozen, "other environments are not frozen")
	assert.False(t, FreezeAt(fs, "production", from.Add(72*time.Hour)).Frozen, "the end is not inside")
}

func TestWeeklyFreezeWrapsTheWeekendInItsTimeZone(t *testing.T) {
	f := mustFreeze(t, Freeze{Name: "weekend", Weekly: "Fri 16:00-Mon 08:00", TimeZone: "Europe/Berlin"})
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	fri := time.Date(2026, 12, 4, 15, 59, 0, 0, berlin) // a Friday
	assert.False(t, FreezeAt([]Freeze{f}, "production", fri).Frozen)
	st := FreezeAt([]Freeze{f}, "production", fri.Add(time.Minute))
	require.True(t, st.Frozen)
	assert.Equal(t, time.Date(2026, 12, 7, 8, 0, 0, 0, berlin), st.Until.In(berlin))
	sunday := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC) // Monday 00:00 in Berlin
	assert.True(t, FreezeAt([]Freeze{f}, "production", sunday).Frozen)
	assert.False(t, FreezeAt([]Freeze{f}, "production", time.Date(2026, 12, 7, 8, 0, 0, 0, berlin)).Frozen)
	assert.False(t, FreezeAt([]Freeze{f}, "production", time.Date(2026, 12, 9, 12, 0, 0, 0, berlin)).Frozen, "Wednesday")
}

func TestFreezeValidation(t *testing.T) {
	for _, tc := range []struct {
		f    Freeze
		want string
	}{
		{Freeze{Weekly: "Fri 16:00-Mon 08:00"}, "freezes[0].name: required"},
		{Freeze{Name: "x", Weekly: "Friday-Monday"}, "want a day (Mon … Sun) and a time"},
		{Freeze{Name: "x", Weekly: "Fri 16:00-Mon 08:00", TimeZone: "Mars/Olympus"}, "freezes[0].timeZone"},
		{Freeze{Name: "x"}, "give from and to (RFC 3339), or weekly"},
		{Freeze{Name: "x", From: time.Unix(100, 0), To: time.Unix(50, 0)}, "must be after from"},
	} {
		err := tc.f.Validate("freezes[0]")
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}
