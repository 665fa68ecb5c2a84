package maintain

import (
	"context"
	"fmt"
	"math"
	"sort"
	"stepwise.dev/stepwise/internal/cli"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/gc"
	"stepwise.dev/stepwise/internal/rebuild"
)

// durationValue is a flag of a duration that also takes days: 30d, 12h.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return formatDuration(*v.d)
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseDuration reads a Go duration (90m, 12h) or a number of days (30d).
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || !(n >= 0) {
			return 0, fmt.Errorf("%q is not a number of days (write e.g. 30d)", s)
		}
		if n > float64(math.MaxInt64/int64(24*time.Hour)) {
			return 0, fmt.Errorf("%q is more days than a duration holds (about 106,000)", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (write e.g. 30d, 12h or 90m)", s)
	}
	return d, nil
}

// formatDuration writes whole days as 30d, anything else as Go does.
func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// gcCmd finds, and with --apply deletes, what no kept run needs.
func gcCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("gc")
	o := gc.Options{Retention: gc.DefaultRetention, Grace: gc.DefaultGrace}
	fs.BoolVar(&o.Apply, "apply", false, "delete; without it gc only reports what it would delete")
	fs.Var(durationValue{&o.Retention}, "retention", "keep every run that started less than this ago (e.g. 30d, 12h)")
	fs.Var(durationValue{&o.Grace}, "grace", "delete nothing written less than this ago: what running tasks may be writing")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	_, store, meta, err := maintenanceStores(e, ctx)
	if err != nil {
		return err
	}
	defer meta.Close()
	rep, err := gc.Collect(ctx, store, meta, o)
	if err != nil {
		if rep != nil && rep.Freed > 0 {
			err = fmt.Errorf("%w (%s were freed before; run gc again once the cause is fixed)", err, datastore.FormatBytes(rep.Freed))
		}
		return err
	}
	if e.JSON() {
		return e.PrintJSON(rep)
	}
	verb, freed := "deleted", "Freed"
	if !o.Apply {
		verb, freed = "to delete", "Would free"
		fmt.Fprintf(e.Stdout(), "Dry run: nothing was deleted; run 'gc --apply' to delete what is listed.\n")
	}
	fmt.Fprintf(e.Stdout(), "Datastore %s, metadata store %s; retention %s, grace period %s.\n\n",
		store.Backend(), rebuild.Describe(meta), formatDuration(o.Retention), formatDuration(o.Grace))
	kept := 0
	var reasons []string
	for r, n := range rep.Kept {
		kept += n
		reasons = append(reasons, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(reasons)
	fmt.Fprintf(e.Stdout(), "Runs: %d, of which %d kept", rep.Runs, kept)
	if len(reasons) > 0 {
		fmt.Fprintf(e.Stdout(), " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintf(e.Stdout(), "; %d lose their logs or values", len(rep.Collected))
	const show = 10
	if n := len(rep.Collected); n > 0 {
		fmt.Fprintf(e.Stdout(), ": %s", strings.Join(rep.Collected[:min(n, show)], ", "))
		if n > show {
			fmt.Fprintf(e.Stdout(), " and %d more", n-show)
		}
	}
	fmt.Fprintf(e.Stdout(), ".\n\n")
	rows := [][]string{
		{"blobs kept runs use", "kept", fmt.Sprint(rep.Reachable.Count), datastore.FormatBytes(rep.Reachable.Bytes)},
		{"blobs no kept run uses", verb, fmt.Sprint(rep.Blobs.Count), datastore.FormatBytes(rep.Blobs.Bytes)},
		{"blobs no kept run uses, but younger than the grace period", "kept", fmt.Sprint(rep.YoungBlobs.Count), datastore.FormatBytes(rep.YoungBlobs.Bytes)},
		{"log chunks, cards and graphs of runs not kept", verb, fmt.Sprint(rep.Logs.Count), datastore.FormatBytes(rep.Logs.Bytes)},
		{"left by crashed writers", verb, fmt.Sprint(rep.Leftovers.Count), datastore.FormatBytes(rep.Leftovers.Bytes)},
		{"left by writers, younger than the grace period", "kept", fmt.Sprint(rep.YoungLeft.Count), datastore.FormatBytes(rep.YoungLeft.Bytes)},
	}
	e.Table("WHAT\t\tCOUNT\tSIZE", rows)
	fmt.Fprintf(e.Stdout(), "\n%s %s.\n", freed, datastore.FormatBytes(rep.Freed))
	if len(rep.Warnings) > 0 {
		fmt.Fprintf(e.Stdout(), "\nWarnings:\n")
		for _, w := range rep.Warnings {
			fmt.Fprintf(e.Stdout(), "  %s\n", w)
		}
	}
	return nil
}
