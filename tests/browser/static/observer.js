// Keeps the CSP violations the page sees, as the Reporting API would send them (type, url,
// body), so the test can post Chromium's own report bodies as application/reports+json.
"use strict";

window.cspReports = [];
new ReportingObserver((reports) => {
  for (const r of reports) {
    window.cspReports.push({ type: r.type, url: r.url, body: r.body.toJSON() });
  }
}, { types: ["csp-violation"], buffered: true }).observe();
