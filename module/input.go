package module

import (
	"net/http"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
)

// Names a client may not set: identity names on every route (openid,
// unionid and every registered platform's IdentityFields, whichever
// platform the handler serves), result names on the routes that inject
// them. They are removed from the body and the query under every spelling
// a lenient binder equates (reqbody.SameName), before the true values are
// set.
var (
	identityFields = append([]string{FieldOpenID, FieldUnionID}, platform.IdentityFields()...)
	resultFields   = []string{FieldPhoneNumber, FieldPurePhoneNumber, FieldCountryCode, FieldDecryptedData}
)

// input is what a route request carries: its body (JSON, form, multipart
// or none) and its query string (wx.request's GET puts the fields there).
type input struct {
	body  *reqbody.Body
	query string
}

// readInput reads a route request's body (refusing what a backend could
// read differently: 415) and keeps its query;
// query is the request's query as it came, before stripQuery.
func (h *Handler) readInput(r *http.Request, query string) (*input, error) {
	body, err := reqbody.ReadLimits(r, reqbody.Limits{Body: h.MaxBodySize})
	if err != nil {
		return nil, err
	}
	return &input{body: body, query: query}, nil
}

// field returns a field the handler reads: from the body, else from the
// query. A field sent more than once (in the body and the query, or twice
// in either, under the same name ignoring case) is refused: the backend
// might read another copy than the handler did.
func (in *input) field(name string) (string, error) {
	n := in.body.CountFold(name)
	if n+reqbody.QueryCountFold(in.query, name) > 1 {
		return "", mperr.Newf(mperr.BadRequest, "the field %q is sent more than once", name)
	}
	if n == 1 {
		v, ok := in.body.String(name)
		if !ok {
			return "", mperr.Newf(mperr.BadRequest, "the field %q is not a string or a number", name)
		}
		return v, nil
	}
	v, _ := reqbody.QueryValue(in.query, name)
	return v, nil
}

// stripQuery removes protected names from the request's query, on the
// request that goes upstream and on the original one (php_fastcgi sends
// REQUEST_URI from it).
func stripQuery(r *http.Request, names []string) {
	if q, changed := reqbody.StripQuery(r.URL.RawQuery, names...); changed {
		r.URL.RawQuery = q
		r.URL.ForceQuery = false
	}
	if or, ok := originalRequest(r); ok {
		if q, changed := reqbody.StripQuery(or.URL.RawQuery, names...); changed {
			or.URL.RawQuery = q
		}
	}
}

// protectedNames are the names removed from a route's query and body.
func (h *Handler) protectedNames(rt route) []string {
	if rt == routeLogin {
		return identityFields
	}
	return h.payloadProtected
}
