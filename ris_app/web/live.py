"""Live pages: the order page, the schedule and the reading worklist refresh what changes
under the user without a full reload.

One small mechanism, polling rather than server-sent events: static/live.js asks for the
page's own URL every few seconds with If-None-Match, and `live_page` answers 304 when the
page would be the same (an ETag of its HTML), so a quiet page costs a render but sends
nothing. Polling the page itself needs no second set of routes: the refresh has the page's
roles and its audit by construction (web/access.py, web/audit.py: a 304 sent nothing, so
it is no read to record; a changed page is). It works behind any proxy and worker count,
where SSE would hold a worker per open tab. live.js swaps only the page's regions marked
`data-live` (by id), skips a region the user is typing in, pauses while the tab is hidden
and announces the update politely (aria-live).
"""

from __future__ import annotations

import functools

from flask import make_response, request

# Seconds between two refreshes of a live page (static/live.js reads data-live-every).
REFRESH_SECONDS = 5


def live_page(view):
    """Wrap a page view so that a GET answers with an ETag, and 304 when it matches."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        if request.method == "GET" and response.status_code == 200:
            response.add_etag()
            response.headers["Cache-Control"] = "private, no-cache"
            response.make_conditional(request)
        return response

    return wrapper
