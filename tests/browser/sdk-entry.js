// What the test page uses of @sentry/browser; fetch_sdk.py bundles it as the global `Sentry`,
// like Sentry's CDN bundle "bundle.tracing.replay.min.js" (which the npm package does not ship).
export {
  init,
  browserTracingIntegration,
  replayIntegration,
  captureException,
  captureMessage,
  addBreadcrumb,
  setUser,
  setTag,
  flush,
  getClient,
  getReplay,
  SDK_VERSION,
} from "@sentry/browser";
