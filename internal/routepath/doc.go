// Package routepath recognises the handler's routes on raw request paths
// the way backends route them, so that no spelling of a protected path
// (/API/login/, /api//login, /api/login;jsessionid=A, /x/..;/api/login,
// /api/%2e/login, /api/login.json, ...) reaches the upstream as an
// ordinary request.
//
// # Canonical form
//
// Canonical maps a raw path (r.URL.EscapedPath() or a request-target) to
// the form routes are compared in. It applies passes of these rules until
// nothing changes:
//
//   - a query ("?") and fragment ("#") are dropped, and an absolute-form
//     "scheme://authority" prefix;
//   - ";params" are dropped from every segment, up to the next "/"
//     (Tomcat, Jetty, Spring);
//   - one level of percent-encoding is decoded per pass ("%XX", IIS's
//     "%uXXXX", and an overlong UTF-8 "%C0%AE" as the ASCII byte it
//     encodes); an invalid escape stays literal. Passes repeat, so
//     "%252e" is "." after two;
//   - the path ends at a decoded NUL (C backends stop there), "?" or "#"
//     (a front controller that decodes the URI before parsing it; this
//     also keeps Canonical idempotent: its result has no "?" or "#");
//   - "\" is "/";
//   - empty segments are dropped (slashes merged, leading and trailing "/"
//     included), "." segments dropped, ".." removes the previous segment and
//     never goes above the root;
//   - trailing dots and spaces of a segment are dropped ("login." and
//     "login%20" are "login", as on Windows), unless that leaves nothing;
//   - case is folded: ASCII, Unicode simple folding, and the ToUpper /
//     ToLower equivalences of Java and .NET (so the Kelvin sign is "k", the
//     long s is "s", dotless and dotted i are "i");
//   - the last segment loses its extension ("login.json", "login.html" and
//     "login.do" are "login": Spring's suffix pattern match, ThinkPHP's
//     url_html_suffix).
//
// A path made only of lower-case unreserved characters, without empty or
// dot segments and without a "." in its last segment, is already
// canonical: Canonical returns it without allocating.
//
// # Readings
//
// Backends disagree, so one canonical form cannot cover them all: nginx
// keeps ";x" as a segment that ".." removes, Tomcat strips it first;
// RFC 3986 and WHATWG parsers let ".." remove an empty segment; Windows
// reads ".. " as ".."; a router that decodes once sees "%252e%252e" as a
// name. Matcher.Match therefore reads a path several ways and recognises
// a route when any reading is on it: with and without ";params"
// stripping, with and without the cut at NUL (or only there, not at "?"),
// "\" as "/" or as a name, with empty segments counting
// for "..", with Windows dot segments; the result of every pass (one more
// level of decoding each, as each router in a chain sees it); the
// PATH_INFO after each ".php" (Caddy's php_fastcgi splits there and PHP
// frameworks route on it: "/index.php/api/login" is /api/login); and, for
// prefix patterns, every directory ".." resolution passes through
// ("/api/.." is under /api/* to Express and Werkzeug, which do not resolve
// dots). Over-matching is the safe direction: a request recognised as a
// route is processed as one (identity removed and injected), not refused.
//
// A path still changing after the last pass (encoded about ten levels
// deep) or longer than 8 KiB and not canonical is Unclear: no route can be
// ruled out, and the request should be refused.
//
// # Patterns
//
// A route pattern is an exact path ("/api/login") or a prefix ending in
// "*": "/api/*" is /api and everything under it, "/api*" every path whose
// canonical form starts with /api. Patterns are written decoded, in ASCII;
// CheckPattern refuses what the normalisation would make ambiguous (%, ;,
// \, empty or dot segments, a trailing "/" or "."). A pattern is compared
// in canonical form, so "/wx/login.do" also matches "/wx/login".
//
// # Left out
//
// Full case folding ("ß" as "ss") and Unicode normalisation (fullwidth
// letters): no common router applies them to paths. "+" as a space: only
// query strings use it. Windows short names and "::$DATA" streams: file
// systems, not routers. Routing by query string ("/index.php?s=/api/login")
// or by anything but the path: it needs the route declared another way.
package routepath
