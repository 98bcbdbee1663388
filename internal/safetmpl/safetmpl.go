// Package safetmpl parses and runs the Go text/templates a release spec carries (exec commands, queries,
// URLs, message bodies) with bounds, because whoever writes a spec writes the template: a template may
// not define or call other templates (no recursion), may not nest range loops, may not hold a number
// literal above MaxNumber (a loop count), and every function it calls refuses oversized strings. At
// run time its output stops at MaxOutput and its execution at Timeout. Every template also gets shq,
// which quotes a value for the POSIX shell.
//
// It is a leaf package: the standard library only.
package safetmpl

import (
	"errors"
	"fmt"
	"html/template"
	"reflect"
	"strings"
	"sync/atomic"
	"text/template/parse"
	"time"

	texttemplate "text/template"
)

// Bounds on a template and its execution.
const (
	// MaxOutput bounds what one execution writes, and the strings one function call accepts.
	MaxOutput = 64 << 10
	// Timeout bounds one execution.
	Timeout = 2 * time.Second
	// MaxNumber bounds the number literals a template may hold (a loop count, a printf width).
	MaxNumber = 100_000
	// maxWidth bounds a printf width or precision, which fmt allocates before anything is written.
	maxWidth = 1000
)

// ErrTooLarge is returned (wrapped) when an execution's output passes MaxOutput.
var ErrTooLarge = errors.New("template output is larger than the limit")

// ErrTooSlow is returned (wrapped) when an execution runs longer than Timeout.
var ErrTooSlow = errors.New("template execution took longer than the limit")

// Shq quotes s for the POSIX shell as one word: in single quotes, each single quote inside written as
// quote, backslash, quote, quote. {{shq .Version}} is how a command template passes a value to sh,
// whatever the value holds.
func Shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Template is a parsed template whose functions and execution are bounded.
type Template struct {
	t        *texttemplate.Template
	deadline atomic.Int64 // Unix nanoseconds; the running execution's deadline, checked by every call
}

// Parse parses text as a template named name with missingkey=error, the base functions (shq, and bounded
// versions of printf, print, println, html, js and urlquery) and funcs, and checks it against the bounds
// in the package comment. Every function (funcs included) refuses string arguments longer than MaxOutput
// in total, so no chain of calls can build a huge string, and refuses to run past the deadline.
func Parse(name, text string, funcs texttemplate.FuncMap) (*Template, error) {
	t := &Template{}
	fm := texttemplate.FuncMap{}
	for k, f := range base {
		fm[k] = t.guard(k, f)
	}
	for k, f := range funcs {
		fm[k] = t.guard(k, f)
	}
	tt, err := texttemplate.New(name).Funcs(fm).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := check(tt); err != nil {
		return nil, fmt.Errorf("template: %s: %w", name, err)
	}
	t.t = tt
	return t, nil
}

// Execute runs the template over data and returns its output, failing with ErrTooLarge past MaxOutput
// bytes (with the first MaxOutput bytes, for callers that truncate) and ErrTooSlow past Timeout.
func (t *Template) Execute(data any) (string, error) {
	w := &limitWriter{deadline: time.Now().Add(Timeout)}
	t.deadline.Store(w.deadline.UnixNano())
	err := t.t.Execute(w, data)
	if w.err != nil {
		return w.b.String(), w.err // the template's own error wraps it less legibly
	}
	if err != nil {
		return "", err
	}
	return w.b.String(), nil
}

// limitWriter aborts an execution (the template returns its error) once it has written MaxOutput bytes or
// run past its deadline.
type limitWriter struct {
	b        strings.Builder
	deadline time.Time
	err      error
}

func (w *limitWriter) Write(p []byte) (int, error) {
	switch {
	case w.err != nil:
	case w.b.Len()+len(p) > MaxOutput:
		w.b.Write(p[:MaxOutput-w.b.Len()])
		w.err = fmt.Errorf("%w of %d bytes", ErrTooLarge, MaxOutput)
	case time.Now().After(w.deadline):
		w.err = tooSlow()
	}
	if w.err != nil {
		return 0, w.err
	}
	return w.b.Write(p)
}

func tooSlow() error { return fmt.Errorf("%w of %s", ErrTooSlow, Timeout) }

// base are the functions every template gets; the bounded builtins replace text/template's own (a
// template's functions take precedence over the builtins).
var base = texttemplate.FuncMap{
	"shq":      Shq,
	"printf":   printf,
	"print":    fmt.Sprint,
	"println":  fmt.Sprintln,
	"html":     template.HTMLEscaper,
	"js":       template.JSEscaper,
	"urlquery": template.URLQueryEscaper,
}

// printf is fmt.Sprintf without the widths and precisions that make fmt allocate gigabytes
// ({{printf "%0999999999d" 0}}).
func printf(format string, args ...any) (string, error) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n := 0
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.[]*", format[i]) >= 0; i++ {
			switch c := format[i]; {
			case c == '*':
				return "", errors.New("printf: '*' widths are not allowed")
			case c >= '0' && c <= '9':
				if n = n*10 + int(c-'0'); n > maxWidth {
					return "", fmt.Errorf("printf: widths and precisions above %d are not allowed", maxWidth)
				}
			default:
				n = 0
			}
		}
	}
	return fmt.Sprintf(format, args...), nil
}

var errorType = reflect.TypeFor[error]()

// guard wraps a template function so it refuses string arguments longer than MaxOutput in total, and
// any call past the execution's deadline. The refusal is the function's error result, or else a panic,
// which text/template turns into an execution error naming the function.
func (t *Template) guard(name string, f any) any {
	v := reflect.ValueOf(f)
	ft := v.Type()
	if ft.Kind() != reflect.Func {
		return f
	}
	return reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		size := 0
		for _, a := range args {
			size += stringSize(a)
		}
		var err error
		if size > MaxOutput {
			err = fmt.Errorf("%s: arguments of %d bytes are larger than the limit of %d bytes", name, size, MaxOutput)
		} else if d := t.deadline.Load(); d != 0 && time.Now().UnixNano() > d {
			err = tooSlow()
		}
		if err != nil {
			if ft.NumOut() == 2 && ft.Out(1) == errorType {
				return []reflect.Value{reflect.Zero(ft.Out(0)), reflect.ValueOf(&err).Elem()}
			}
			panic(err)
		}
		if ft.IsVariadic() {
			return v.CallSlice(args)
		}
		return v.Call(args)
	}).Interface()
}

// stringSize is the length of the strings in v: a string, or the strings of a []string or []any (the
// variadic part of a call).
func stringSize(v reflect.Value) int {
	switch v.Kind() {
	case reflect.String:
		return v.Len()
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return stringSize(v.Elem())
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String && v.Type().Elem().Kind() != reflect.Interface {
			return 0
		}
		n := 0
		for i := range v.Len() {
			n += stringSize(v.Index(i))
		}
		return n
	}
	return 0
}

// check walks every tree of t for what the bounds forbid.
func check(t *texttemplate.Template) error {
	if len(t.Templates()) > 1 {
		return errors.New("{{define}} and {{block}} are not allowed")
	}
	if t.Tree == nil || t.Root == nil {
		return nil
	}
	return walk(t.Root, 0)
}

func walk(n parse.Node, ranges int) error {
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := walk(c, ranges); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return errors.New("{{template}} is not allowed")
	case *parse.ActionNode:
		return walk(n.Pipe, ranges)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := walk(c, ranges); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := walk(a, ranges); err != nil {
				return err
			}
		}
	case *parse.ChainNode:
		return walk(n.Node, ranges)
	case *parse.NumberNode:
		if (n.IsInt && (n.Int64 > MaxNumber || n.Int64 < -MaxNumber)) ||
			(n.IsUint && n.Uint64 > MaxNumber) ||
			(!n.IsInt && !n.IsUint && n.IsFloat && (n.Float64 > MaxNumber || n.Float64 < -MaxNumber)) {
			return fmt.Errorf("the number %s is larger than the limit of %d", n.Text, MaxNumber)
		}
	case *parse.IfNode:
		return walkBranch(&n.BranchNode, ranges)
	case *parse.WithNode:
		return walkBranch(&n.BranchNode, ranges)
	case *parse.RangeNode:
		if ranges > 0 {
			return errors.New("a {{range}} inside another {{range}} is not allowed")
		}
		return walkBranch(&n.BranchNode, ranges+1)
	}
	return nil
}

func walkBranch(b *parse.BranchNode, ranges int) error {
	if err := walk(b.Pipe, ranges); err != nil {
		return err
	}
	if err := walk(b.List, ranges); err != nil {
		return err
	}
	return walk(b.ElseList, ranges)
}
