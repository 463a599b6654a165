"""The Atom feed of the status page's posted updates (Django's syndication framework)."""

from __future__ import annotations

from django.contrib.syndication.views import Feed
from django.utils.feedgenerator import Atom1Feed

from comms import selectors
from comms.models import StatusUpdate


class StatusUpdatesFeed(Feed):
    feed_type = Atom1Feed
    title = "Mycelia status: upgrades and maintenance"
    subtitle = "Every update posted on the Mycelia status page."
    link = "/status/"

    def items(self) -> list[StatusUpdate]:
        return selectors.updates_recent(limit=50)

    def item_title(self, item: StatusUpdate) -> str:
        return f"{item.maintenance.title} — {item.status.replace('_', ' ')}"

    # Atom's <summary type="html"> holds HTML: the update's text escaped, paragraphs and line
    # breaks as <p> and <br> (the feed writer escapes that HTML once more for the XML).
    description_template = "comms/feed_item.html"

    def item_link(self, item: StatusUpdate) -> str:
        return f"/status/#upgrade-{item.maintenance.upgrade_id}"

    def item_guid(self, item: StatusUpdate) -> str:
        return f"urn:mycelia-status:update:{item.public_id}"

    item_guid_is_permalink = False

    def item_pubdate(self, item: StatusUpdate):
        return item.created_at

    def item_updateddate(self, item: StatusUpdate):
        return item.created_at
