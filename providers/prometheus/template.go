package prometheus

import (
	"reflect"
	"strconv"

	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/spec"
)

// Render renders a PromQL query template over data. Every string value is escaped with EscapeString
// first, so a value placed inside a double-quoted label matcher (version="{{.Version}}") stays a label
// value whatever it contains. A key the template names but data lacks is an error (missingkey=error).
//
// Values are escaped for double-quoted PromQL strings only: templates must not put them inside single
// quotes or backticks, and a value used in a regex matcher (=~) is matched as a regex.
func Render(queryTemplate string, data spec.TemplateData) (string, error) {
	t, err := safetmpl.Parse("query", queryTemplate, nil)
	if err != nil {
		return "", &Error{Kind: ErrTemplate, Msg: "query template does not parse", Cause: err}
	}
	out, err := t.Execute(escapedData(data))
	if err != nil {
		return "", &Error{Kind: ErrTemplate, Msg: "query template does not render (the keys are .Service " +
			".Environment .Version .PreviousVersion .Percent .Stage .ReleaseID)", Cause: err}
	}
	return out, nil
}

// EscapeString escapes s for use between the double quotes of a PromQL string literal (a label matcher
// value): backslash, double quote, newline and other control characters become escape sequences that
// Prometheus decodes back to s.
func EscapeString(s string) string {
	q := strconv.Quote(s) // PromQL double-quoted strings use Go's escape syntax.
	return q[1 : len(q)-1]
}

// escapedData turns data into a map keyed by field name with string fields escaped. Reflection keeps the
// map in step with spec.TemplateData when fields are added; a map (not the struct) is what makes
// missingkey=error apply.
func escapedData(data spec.TemplateData) map[string]any {
	v := reflect.ValueOf(data)
	m := make(map[string]any, v.NumField())
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Type.Kind() == reflect.String {
			m[f.Name] = EscapeString(v.Field(i).String())
		} else {
			m[f.Name] = v.Field(i).Interface()
		}
	}
	return m
}
