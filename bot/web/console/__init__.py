"""The web console (管理后台): server-rendered Chinese pages for officers, leaders, responders and the
transparency office, one module per area sharing the helpers of `common`.

Every domain action calls the service functions of its package (publishing, tickets, triage,
oversight); the console only reads for display, turns forms into calls and shows domain errors
(bot.errors) as a message on the page with the form input kept. POST forms carry a per-session CSRF
token.
"""

from fastapi import APIRouter

from bot.web.console import (
    admin,
    auth,
    calendar,
    dashboard,
    inbox,
    inspection,
    notices,
    oversight,
    people,
    post_page,
    posts,
    tickets,
)

router = APIRouter(include_in_schema=False)
for _area in (auth, dashboard, posts, post_page, calendar, notices, inbox, tickets, oversight, inspection, admin,
              people):
    router.include_router(_area.router)
