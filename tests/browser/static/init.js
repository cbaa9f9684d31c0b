// Sentry.init with the DSN the test server put in /config.js (window.SPYGLASS).
"use strict";

Sentry.init({
  dsn: window.SPYGLASS.dsn,
  release: "storefront@2.0.0",
  environment: "browser-test",
  integrations: [
    Sentry.browserTracingIntegration(),
    Sentry.replayIntegration({ maskAllText: false, blockAllMedia: false,
                               minReplayDuration: 0, flushMinDelay: 200, flushMaxDelay: 500 }),
  ],
  tracesSampleRate: 1.0,
  replaysSessionSampleRate: 1.0,
  replaysOnErrorSampleRate: 1.0,
});
Sentry.setUser({ id: "shopper-7", email: "shopper7@example.com" });
Sentry.setTag("page", document.body.dataset.page);
window.sentryReady = true;
