package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The viewer's questions, answered from Config.Source (all GET, all
// JSON):
//
//	/api/info
//	/api/jobs?state=S&node=N&p.NAME=VALUE&sort=index|wall&order=asc|desc&offset=K&limit=L
//	/api/jobs/INDEX
//	/api/jobs/INDEX/attempts/N/log
//	/api/timeline?from=MS&to=MS&limit=N
//	/api/space?x=NAME&y=NAME
//
// A question that cannot be answered as asked gets 400 and one line
// saying why; a job or attempt that does not exist 404; a failure of
// the source 500 and a generic line (the error goes to the log), or 503
// when its query ran out of time. These refusals keep the connection
// open, unlike refuse's: the viewer has signed in.

// MaxOffset bounds a jobs page's offset: the store skips that many rows.
const MaxOffset = 10_000_000

// isSourcePath reports whether path is one of the Source's questions.
func isSourcePath(path string) bool {
	switch path {
	case "/api/info", "/api/jobs", "/api/timeline", "/api/space":
		return true
	}
	return strings.HasPrefix(path, "/api/jobs/")
}

// serveSource answers one of the Source's questions.
func (s *server) serveSource(w http.ResponseWriter, r *http.Request) {
	src, ctx, q := s.cfg.Source, r.Context(), r.URL.Query()
	var v any
	var err error
	switch path := r.URL.Path; {
	case path == "/api/info":
		v, err = src.Info(ctx)
	case path == "/api/jobs":
		var jq JobQuery
		if jq, err = jobQuery(q); err == nil {
			v, err = src.Jobs(ctx, jq)
		}
	case path == "/api/timeline":
		var tq TimelineQuery
		if tq, err = timelineQuery(q); err == nil {
			v, err = src.Timeline(ctx, tq)
		}
	case path == "/api/space":
		if q.Get("x") == "" || q.Get("y") == "" {
			err = &BadQuery{Why: "give two parameters: /api/space?x=NAME&y=NAME"}
		} else {
			v, err = src.Space(ctx, SpaceQuery{X: q.Get("x"), Y: q.Get("y")})
		}
	default:
		v, err = jobPath(ctx, src, strings.TrimPrefix(path, "/api/jobs/"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// jobPath answers /api/jobs/INDEX and /api/jobs/INDEX/attempts/N/log.
func jobPath(ctx context.Context, src Source, rest string) (any, error) {
	parts := strings.Split(rest, "/")
	idx, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || idx < 0 {
		return nil, &BadQuery{Why: fmt.Sprintf("no job %q: a job is a number", clip(parts[0]))}
	}
	switch {
	case len(parts) == 1:
		return src.Job(ctx, idx)
	case len(parts) == 4 && parts[1] == "attempts" && parts[3] == "log":
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return nil, &BadQuery{Why: fmt.Sprintf("no attempt %q: an attempt is a number from 1", clip(parts[2]))}
		}
		return src.Log(ctx, idx, n)
	}
	return nil, ErrNotFound
}

// jobQuery reads /api/jobs's query.
func jobQuery(q url.Values) (JobQuery, error) {
	jq := JobQuery{State: q.Get("state"), Node: q.Get("node"), Sort: q.Get("sort")}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		jq.Desc = true
	default:
		return jq, &BadQuery{Why: fmt.Sprintf("no order %q: asc or desc", clip(q.Get("order")))}
	}
	var err error
	if jq.Offset, err = number(q, "offset", 0, MaxOffset); err != nil {
		return jq, err
	}
	if jq.Limit, err = number(q, "limit", 0, 1<<30); err != nil {
		return jq, err
	}
	for k, vs := range q {
		name, ok := strings.CutPrefix(k, "p.")
		if !ok {
			continue
		}
		if jq.Params == nil {
			jq.Params = map[string]string{}
		}
		if len(vs) > 1 {
			return jq, &BadQuery{Why: fmt.Sprintf("parameter %s is filtered %d times: once at most", clip(name), len(vs))}
		}
		if len(jq.Params) >= MaxFilters {
			return jq, &BadQuery{Why: fmt.Sprintf("more than %d parameter filters", MaxFilters)}
		}
		jq.Params[name] = vs[0]
	}
	return jq, nil
}

// timelineQuery reads /api/timeline's query.
func timelineQuery(q url.Values) (TimelineQuery, error) {
	var tq TimelineQuery
	var from, to int
	var err error
	if from, err = number(q, "from", 0, 1<<53); err != nil {
		return tq, err
	}
	if to, err = number(q, "to", 0, 1<<53); err != nil {
		return tq, err
	}
	if tq.Limit, err = number(q, "limit", 0, 1<<30); err != nil {
		return tq, err
	}
	tq.From, tq.To = int64(from), int64(to)
	return tq, nil
}

// number reads the query's key as an integer in [lo, hi], 0 when it is
// not given.
func number(q url.Values, key string, lo, hi int) (int, error) {
	s := q.Get(key)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, &BadQuery{Why: fmt.Sprintf("%s=%s: a whole number from %d to %d", key, clip(s), lo, hi)}
	}
	return int(n), nil
}

// fail answers a question the source could not: 400 with why, 404,
// 503 when the query ran out of time, or 500 with nothing of the error
// but in the log.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bad *BadQuery
	switch {
	case errors.As(err, &bad):
		say(w, http.StatusBadRequest, bad.Why)
	case errors.Is(err, ErrNotFound):
		say(w, http.StatusNotFound, "no such job or attempt (yet)")
	case r.Context().Err() != nil:
		// The viewer went away: nobody reads an answer.
	case errors.Is(err, context.DeadlineExceeded):
		s.cfg.Log.Warn("a viewer's question ran out of time", "path", r.URL.Path, "query", clip(r.URL.RawQuery), "err", err)
		say(w, http.StatusServiceUnavailable, "the question took too long: narrow it, or try again")
	default:
		s.cfg.Log.Error("a viewer's question failed", "path", r.URL.Path, "query", clip(r.URL.RawQuery), "err", err)
		say(w, http.StatusInternalServerError, "the experiment's store could not answer: see the root's log")
	}
}

// say answers code and a one-line reason to a signed-in viewer, keeping
// the connection (refuse closes it).
func say(w http.ResponseWriter, code int, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, strings.ReplaceAll(strings.TrimSpace(why), "\n", " ")+"\n")
}
