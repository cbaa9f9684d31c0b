import logging

import sentry_sdk

from .web import route

log = logging.getLogger("shopapp.jobs")


@route("jobs.nightly")
def nightly(request):
    # An f-string message: its data is in the text, only parameterization can remove it.
    sentry_sdk.capture_message(f"Nightly sync finished with {request['failed']} failures out of {request['total']} records")


@route("jobs.stale")
def stale(request):
    sentry_sdk.capture_message(f"Cart {request['cart']} of {request['email']} stale since {request['since']}", level="warning")


@route("jobs.customer")
def customer_note(request):
    # Names are data too, and no pattern knows them: the hash splits, similarity may not.
    sentry_sdk.capture_message(f"Customer {request['name']} asked for a manual refund", level="info")


@route("jobs.retry")
def retry(request):
    log.warning("retrying job %s (attempt %d of %d)", request["job"], request["attempt"], 5)


@route("jobs.webhook_log")
def webhook_log(request):
    log.error("webhook to %s failed with status %d", request["url"], request["status"])


@route("jobs.cleanup")
def cleanup(request):
    try:
        request["files"].remove(request["file"])
    except ValueError:
        log.exception("cleanup of %s failed", request["file"])


@route("jobs.quota")
def quota(request):
    sentry_sdk.capture_message(f"Tenant {request['tenant']} over quota: {request['used']} GB of {request['limit']} GB used", level="warning")


@route("jobs.heartbeat")
def heartbeat(request):
    log.error("worker %s missed heartbeat at %s", request["worker"], request["at"])
