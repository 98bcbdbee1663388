package approvals

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Freeze is a change-freeze window: no traffic shift and no promotion starts inside it, unless a
// break-glass approval lets one through. Either a calendar range (From, To) or a weekly window (Weekly).
type Freeze struct {
	// Name is shown while a release waits, e.g. "year-end freeze".
	Name string `json:"name"`
	// Environments the freeze applies to; empty or "*": every one.
	Environments []string `json:"environments,omitempty"`
	// From and To bound a calendar window (RFC 3339).
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Weekly is a recurring window such as "Fri 16:00-Mon 08:00", in TimeZone.
	Weekly string `json:"weekly,omitempty"`
	// TimeZone of Weekly, an IANA name such as "Europe/Berlin"; default UTC.
	TimeZone string `json:"timeZone,omitempty"`

	weekly *weeklyWindow
	loc    *time.Location
}

type weeklyWindow struct {
	fromDay, toDay time.Weekday
	fromMin, toMin int // minutes after midnight
}

// Validate checks the window and prepares it; path prefixes its messages (e.g. "approvals.freezes[0]").
func (f *Freeze) Validate(path string) error {
	if f.Name == "" {
		return fmt.Errorf("%s.name: required (it is shown while releases wait)", path)
	}
	switch {
	case f.Weekly != "" && (!f.From.IsZero() || !f.To.IsZero()):
		return fmt.Errorf("%s: give from/to or weekly, not both", path)
	case f.Weekly != "":
		w, err := parseWeekly(f.Weekly)
		if err != nil {
			return fmt.Errorf("%s.weekly: %w", path, err)
		}
		f.weekly = w
		f.loc = time.UTC
		if f.TimeZone != "" {
			if f.loc, err = time.LoadLocation(f.TimeZone); err != nil {
				return fmt.Errorf("%s.timeZone: %w", path, err)
			}
		}
	case f.From.IsZero() || f.To.IsZero():
		return fmt.Errorf("%s: give from and to (RFC 3339), or weekly", path)
	case !f.To.After(f.From):
		return fmt.Errorf("%s: to (%s) must be after from (%s)", path, f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return nil
}

var days = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// parseWeekly reads "Fri 16:00-Mon 08:00".
func parseWeekly(s string) (*weeklyWindow, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return nil, fmt.Errorf("%q: want e.g. \"Fri 16:00-Mon 08:00\"", s)
	}
	fd, fm, err := parseDayTime(strings.TrimSpace(from))
	if err != nil {
		return nil, err
	}
	td, tm, err := parseDayTime(strings.TrimSpace(to))
	if err != nil {
		return nil, err
	}
	if fd == td && fm == tm {
		return nil, fmt.Errorf("%q is empty", s)
	}
	return &weeklyWindow{fromDay: fd, toDay: td, fromMin: fm, toMin: tm}, nil
}

func parseDayTime(s string) (time.Weekday, int, error) {
	day, hm, ok := strings.Cut(s, " ")
	d, known := days[strings.ToLower(day)]
	if !ok || !known {
		return 0, 0, fmt.Errorf("%q: want a day (Mon … Sun) and a time, e.g. \"Fri 16:00\"", s)
	}
	t, err := time.Parse("15:04", strings.TrimSpace(hm))
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	return d, t.Hour()*60 + t.Minute(), nil
}

// minuteOfWeek counts minutes from Sunday 00:00.
func minuteOfWeek(d time.Weekday, m int) int { return int(d)*24*60 + m }

// activeAt reports whether the window covers t, and when it ends.
func (f *Freeze) activeAt(t time.Time) (bool, time.Time) {
	if f.weekly == nil {
		return !t.Before(f.From) && t.Before(f.To), f.To
	}
	lt := t.In(f.loc)
	now := minuteOfWeek(lt.Weekday(), lt.Hour()*60+lt.Minute())
	from, to := minuteOfWeek(f.weekly.fromDay, f.weekly.fromMin), minuteOfWeek(f.weekly.toDay, f.weekly.toMin)
	const week = 7 * 24 * 60
	inside := func() bool {
		if from < to {
			return now >= from && now < to
		}
		return now >= from || now < to // wraps past Sunday midnight
	}()
	if !inside {
		return false, time.Time{}
	}
	left := (to - now + week) % week
	end := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), 0, 0, f.loc).Add(time.Duration(left) * time.Minute)
	return true, end
}

// FreezeState says whether a freeze holds an environment at a time.
type FreezeState struct {
	Frozen bool      `json:"frozen"`
	Name   string    `json:"name,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// FreezeAt is the freeze that holds environment at t (the one that ends last when several do).
func FreezeAt(freezes []Freeze, environment string, t time.Time) FreezeState {
	var st FreezeState
	for i := range freezes {
		f := &freezes[i]
		if len(f.Environments) > 0 && !slices.Contains(f.Environments, "*") && !slices.Contains(f.Environments, environment) {
			continue
		}
		if on, until := f.activeAt(t); on && until.After(st.Until) {
			st = FreezeState{Frozen: true, Name: f.Name, Until: until}
		}
	}
	return st
}
