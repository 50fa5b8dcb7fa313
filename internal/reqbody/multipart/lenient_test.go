package multipart

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// A lenient model reads the part names of a body the way a forgiving
// backend parser might: boundaries found by plain search, header names in
// any case, and the name parameter found by a rule of its own. The output
// of Body must give every model the names Names() gives.
type lenientModel struct {
	label string
	name  func(disposition string) string
}

var lenientModels = []lenientModel{
	{"quote-aware, first name wins", func(cd string) string { return pickName(splitQuoted(cd, `"`), false) }},
	{"quote-aware, last name wins", func(cd string) string { return pickName(splitQuoted(cd, `"`), true) }},
	{"PHP-like: ' and \" quote, last wins", func(cd string) string { return pickName(splitQuoted(cd, `"'`), true) }},
	{"naive split on ';', last wins", func(cd string) string { return pickName(strings.Split(cd, ";"), true) }},
	{"regex \\bname=, first match", func(cd string) string { return regexName(cd, false) }},
	{"regex \\bname=, last match", func(cd string) string { return regexName(cd, true) }},
}

func (m lenientModel) names(t testing.TB, boundary string, body []byte) []string {
	t.Helper()
	chunks := bytes.Split(body, []byte("--"+boundary))
	var names []string
	for _, c := range chunks[1:] {
		if bytes.HasPrefix(c, []byte("--")) {
			break
		}
		head, _, ok := bytes.Cut(c, []byte("\r\n\r\n"))
		if !ok {
			head, _, _ = bytes.Cut(c, []byte("\n\n"))
		}
		name := ""
		for _, line := range strings.Split(string(head), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && strings.EqualFold(strings.TrimSpace(k), "content-disposition") {
				name = m.name(strings.TrimSpace(v))
			}
		}
		names = append(names, name)
	}
	return names
}

// splitQuoted splits on ';' outside quotes (any of quotes), a backslash
// escaping the next character inside them.
func splitQuoted(s, quotes string) []string {
	var out []string
	start, q := 0, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0 && c == '\\':
			i++
		case q != 0 && c == q:
			q = 0
		case q == 0 && strings.IndexByte(quotes, c) >= 0:
			q = c
		case q == 0 && c == ';':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func pickName(params []string, last bool) string {
	name := ""
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "name") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		v = strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(v)
		if !last {
			return v
		}
		name = v
	}
	return name
}

var nameRE = regexp.MustCompile(`(?i)\bname\s*=\s*(?:"([^"]*)"|([^;\s"]*))`)

func regexName(s string, last bool) string {
	ms := nameRE.FindAllStringSubmatch(s, -1)
	if len(ms) == 0 {
		return ""
	}
	m := ms[0]
	if last {
		m = ms[len(ms)-1]
	}
	return m[1] + m[2]
}
