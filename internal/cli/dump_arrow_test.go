package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	_ "stepwise.dev/stepwise/internal/codec/arrowcodec" // as the stepwise command has it
)

func arrowTable(rows int) arrow.Table {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "city", Type: arrow.BinaryTypes.String},
		{Name: "temp", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range rows {
		b.Field(0).(*array.StringBuilder).Append([]string{"Oslo", "Lima", "Pune"}[i%3])
		if i%4 == 3 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.Float64Builder).Append(float64(i) + 0.5)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// TestDumpArrowArtifact: dump shows an Arrow artifact's schema, rows and
// first values, --json all of it, and --artifact with --out writes the
// Arrow IPC file that Arrow's own reader reads.
func TestDumpArrowArtifact(t *testing.T) {
	tbl := arrowTable(1000)
	defer tbl.Release()
	task := recordTask(t, artifact{name: "Weather", v: tbl}, artifact{name: "N", v: 1000})

	for _, tc := range []struct {
		width string
		wants []string
	}{
		{"80", []string{"Weather   arrow.Table", `arrow table, 1000 rows: city utf8 not null, temp float64; {"city"... (1000 rows)`}},
		{"200", []string{`arrow table, 1000 rows: city utf8 not null, temp float64; {"city":"Oslo","temp":0.5}; {"city":"Lima","temp":1.5}`, "... (1000 rows)"}},
	} {
		out, errOut, code := stepwise(t, "dump", task, "--width", tc.width)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range tc.wants {
			if !strings.Contains(out, want) {
				t.Errorf("dump --width %s lacks %q:\n%s", tc.width, want, out)
			}
		}
	}

	out, errOut, code := stepwise(t, "dump", task, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Artifacts []struct {
			Name  string
			Value json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Artifacts) != 2 {
		t.Fatalf("dump --json is not JSON with two artifacts: %v\n%s", err, out)
	}
	var weather struct {
		Format string
		Rows   int
		Data   []map[string]any
	}
	if err := json.Unmarshal(doc.Artifacts[1].Value, &weather); err != nil || weather.Format != "arrow" || weather.Rows != 1000 || len(weather.Data) != 1000 || weather.Data[3]["temp"] != nil || weather.Data[4]["city"] != "Lima" {
		t.Errorf("dump --json shows Weather as %+v, %v", weather, err)
	}

	file := filepath.Join(t.TempDir(), "weather.arrow")
	if _, errOut, code = stepwise(t, "dump", task, "--artifact", "Weather", "--out", file); code != 0 || !strings.Contains(errOut, "wrote artifact Weather") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Arrow's reader refuses the exported file: %v", err)
	}
	defer r.Close()
	rec, err := r.RecordBatch(0)
	if err != nil || rec.NumRows() != 1000 || rec.Column(0).(*array.String).Value(2) != "Pune" {
		t.Errorf("the exported file holds %v, %v", rec, err)
	}
	stdout, _, code := stepwise(t, "dump", task, "--artifact", "Weather", "--out", "-")
	if code != 0 || stdout != string(data) {
		t.Errorf("--out - wrote %d bytes (exit %d), want the %d of the file", len(stdout), code, len(data))
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", file}, 2, "--artifact and --out go together"},
		{[]string{"--artifact", "Nope", "--out", file}, 1, `has no artifact "Nope" (it has N, Weather)`},
	} {
		_, errOut, code := stepwise(t, append([]string{"dump", task}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("dump %v: exit %d, %s; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
