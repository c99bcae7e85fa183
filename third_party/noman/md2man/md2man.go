// Package md2man stands in for github.com/cpuguy83/go-md2man/v2 in Portal's
// build (go.mod replaces the module with this one).
//
// Only urfave/cli imports it, for App.ToMan (a man page from the command's
// help), which Portal never calls; the real module brings a Markdown parser
// (blackfriday) whose package initialisation every Portal process paid.
// urfave/cli's own way to leave it out is the urfave_cli_no_docs build tag,
// which a plain go build ./cmd/portal cannot carry.
package md2man

// Render returns doc as it is: no man page is rendered.
func Render(doc []byte) []byte { return doc }
