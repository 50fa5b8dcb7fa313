package reqbody

import (
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
)

// Copies of a field the handler reads. Count and QueryValue's count match
// every spelling a lenient binder could equate (for removing names, where
// matching too much is harmless); a field the handler reads is a copy of
// another only under the same name ignoring case, so that "code" and
// "country.code" are not taken for one field sent twice.

// CountFold returns how many top-level fields are named name, ignoring
// case (JSON keys after decoding escapes; every form value counts).
func (b *Body) CountFold(name string) int {
	n := 0
	switch b.kind {
	case JSON:
		for _, m := range b.members {
			if jsonobj.EqualFold(m.key, name) {
				n++
			}
		}
	case Form:
		for _, f := range b.form {
			if jsonobj.EqualFoldString(f.name, name) {
				n += 1 + len(f.more)
			}
		}
	case Multipart:
		for _, sent := range b.mp.Names() {
			if jsonobj.EqualFoldString(sent, name) {
				n++
			}
		}
	}
	return n
}

// QueryCountFold returns how many pairs of the raw query string (split on
// '&' and ';') have a name that decodes leniently to name, ignoring case.
func QueryCountFold(raw, name string) int {
	n := 0
	for seg := range strings.SplitSeq(raw, "&") {
		for part := range strings.SplitSeq(seg, ";") {
			k, _, _ := strings.Cut(part, "=")
			if k != "" && jsonobj.EqualFoldString(unescape(k), name) {
				n++
			}
		}
	}
	return n
}
