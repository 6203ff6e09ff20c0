package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// assets are the page's files, all embedded: the page fetches nothing
// from anywhere but the root's own port.
//
//go:embed assets
var assets embed.FS

// assetTypes are the Content-Types of the page's files by extension; a
// file of any other kind is not served.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// pageHandler serves the viewer's page: GET / is index.html and
// /assets/NAME the embedded file NAME; anything else is 404.
func pageHandler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("web: the embedded assets: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var name string
		switch p := r.URL.Path; {
		case p == "/":
			name = "index.html"
		case strings.HasPrefix(p, "/assets/"):
			name = strings.TrimPrefix(p, "/assets/")
			if name == "" || strings.Contains(name, "/") || !fs.ValidPath(name) {
				refuse(w, http.StatusNotFound, "no such page")
				return
			}
		default:
			refuse(w, http.StatusNotFound, "no such page")
			return
		}
		ctype, ok := assetTypes[path.Ext(name)]
		if !ok {
			refuse(w, http.StatusNotFound, "no such page")
			return
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			refuse(w, http.StatusNotFound, "no such page")
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	})
}
