package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update", false, "rewrite the README's contents list from its headings")

// TestReadmeContents keeps the README's "Contents" list the list of its
// level-2 and level-3 headings, in order, each linking to the anchor GitHub
// gives it. go test ./cmd/portal -run TestReadmeContents -update rewrites it.
func TestReadmeContents(t *testing.T) {
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const head = "## Contents\n\n"
	start := strings.Index(doc, head)
	if start < 0 {
		t.Fatal("README.md has no \"## Contents\" section")
	}
	end := strings.Index(doc[start+len(head):], "\n\n")
	if end < 0 {
		t.Fatal("the contents list does not end")
	}
	end += start + len(head)
	want := contents(doc[end:])
	if got := doc[start+len(head) : end]; got != want {
		if *updateReadme {
			if err := os.WriteFile(path, []byte(doc[:start+len(head)]+want+doc[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's contents list is stale; go test ./cmd/portal -run TestReadmeContents -update rewrites it. Want:\n%s", want)
	}
}

var (
	heading     = regexp.MustCompile(`(?m)^(##|###) (.+)$`)
	notInAnchor = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
	fence       = regexp.MustCompile("(?ms)^```.*?^```")
)

// contents is the markdown list of the headings in doc (code blocks left out).
func contents(doc string) string {
	doc = fence.ReplaceAllString(doc, "")
	var lines []string
	for _, m := range heading.FindAllStringSubmatch(doc, -1) {
		title := strings.ReplaceAll(m[2], "`", "")
		anchor := strings.ReplaceAll(notInAnchor.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		indent := ""
		if m[1] == "###" {
			indent = "  "
		}
		lines = append(lines, indent+"- ["+title+"](#"+anchor+")")
	}
	return strings.Join(lines, "\n")
}
