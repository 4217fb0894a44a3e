// Package web holds the admin panel's page: HTML, CSS and JavaScript
// embedded in the binary, with nothing fetched from elsewhere, so it works
// offline and under a Content-Security-Policy without 'unsafe-inline'.
package web

import "embed"

// Files are the page's files, served at the panel's root, with its icon
// (favicon.ico, which browsers ask for unprompted, and favicon.svg), and
// the charting library the service view draws values with (uPlot, its
// licence and where it came from beside it).
//
//go:embed index.html app.js app.css favicon.ico favicon.svg vendor/uplot
var Files embed.FS
