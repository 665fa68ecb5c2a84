package codec

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// A time.Time is stored as tag 0 with text: RFC 3339 with nanoseconds, then,
// for a time not in UTC, the name of its location in brackets as RFC 9557
// extends RFC 3339:
//
//	2024-03-05T12:34:56.123456789Z                  UTC (as format version 1 wrote every time)
//	2024-03-05T18:04:56.123456789+05:30[Asia/Kolkata]
//	2024-03-05T18:04:56+05:30                       a fixed offset without a name
//
// An offset with seconds (local mean time before 1900 in some zones) is
// written +hh:mm:ss. Reading loads the named location (time.LoadLocation)
// and uses it when it gives the stored offset at that instant; otherwise,
// and for names that are not locations (time.FixedZone("EST", ...)), it
// makes a fixed zone with the stored name and offset. A time in time.Local
// is stored under its zone abbreviation (CET, PST...) as a fixed zone, since
// Local means another zone on the machine that reads it. The monotonic
// clock reading is not stored. The zero time is null.

const (
	layoutMinutes = "2006-01-02T15:04:05.999999999Z07:00"
	layoutSeconds = "2006-01-02T15:04:05.999999999Z07:00:00"
)

// timeText returns the text a time is stored as.
func timeText(t time.Time) (string, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("the year %d is outside 0000-9999, which RFC 3339 text can hold", y)
	}
	loc := t.Location()
	name, off := t.Zone()
	if loc != time.Local {
		name = loc.String()
	}
	if loc == time.UTC || off == 0 && (name == "UTC" || name == "") {
		return t.UTC().Format(layoutMinutes), nil
	}
	layout := layoutMinutes
	if off%60 != 0 {
		layout = layoutSeconds
	}
	s := t.Format(layout)
	if name != "" {
		s += "[" + name + "]"
	}
	return s, nil
}

// parseTimeText parses what timeText writes.
func parseTimeText(s string) (time.Time, error) {
	stamp, name := s, ""
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") || i == len(s)-2 {
			return time.Time{}, fmt.Errorf("%w: the time %q has an unclosed or empty zone name", ErrCorrupt, s)
		}
		stamp, name = s[:i], s[i+1:len(s)-1]
	}
	t, err := time.Parse(layoutMinutes, stamp)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse(layoutSeconds, stamp); err2 != nil {
			return time.Time{}, fmt.Errorf("%w: the stored time %q is not RFC 3339 text: %v", ErrCorrupt, s, err)
		}
	}
	_, off := t.Zone()
	if name == "" {
		if off == 0 && strings.HasSuffix(stamp, "Z") {
			return t.UTC(), nil
		}
		// time.Parse picks Local when the offset is Local's; keep it fixed.
		return t.In(fixedZone("", off)), nil
	}
	if loc := loadLocation(name); loc != nil {
		if _, o := t.In(loc).Zone(); o == off {
			return t.In(loc), nil
		}
	}
	return t.In(fixedZone(name, off)), nil
}

type zoneKey struct {
	name string
	off  int
}

var (
	locations sync.Map // name -> *time.Location, nil when it does not load
	fixed     sync.Map // zoneKey -> *time.Location
)

// loadLocation returns the location called name, or nil; results are kept,
// since loading reads the zone database.
func loadLocation(name string) *time.Location {
	if v, ok := locations.Load(name); ok {
		return v.(*time.Location)
	}
	var loc *time.Location
	if name != "Local" && name != "" {
		if l, err := time.LoadLocation(name); err == nil {
			loc = l
		}
	}
	locations.Store(name, loc)
	return loc
}

func fixedZone(name string, off int) *time.Location {
	k := zoneKey{name, off}
	if v, ok := fixed.Load(k); ok {
		return v.(*time.Location)
	}
	v, _ := fixed.LoadOrStore(k, time.FixedZone(name, off))
	return v.(*time.Location)
}
