package web

import (
	"strings"
	"sync"

	"github.com/medama-io/go-useragent"
)

// uaParser reads user agents into browser and OS names; built on first use
// (it loads its tables once).
var uaParser = sync.OnceValue(useragent.NewParser)

// deviceName is a session's device as a person names it ("Chrome 118 on
// Windows"), from its user agent: the raw string when the parser knows
// neither browser nor OS (it stays in the cell's title either way).
func deviceName(ua string) string {
	a := uaParser().Parse(ua)
	browser, os := string(a.Browser()), string(a.OS())
	if v := a.BrowserVersionMajor(); browser != "" && v != "" {
		browser += " " + v
	}
	switch {
	case browser != "" && os != "":
		return browser + " · " + os
	case browser != "" || os != "":
		return browser + os
	}
	if len(ua) > 60 {
		return strings.TrimSpace(ua[:60]) + "…"
	}
	return ua
}
