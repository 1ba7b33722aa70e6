"""A queue's filters and order, carried from the queue to the cases it opens and back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.http import QueryDict
from django.urls import reverse

from webapp.reviews.forms import QueueFilterForm
from webapp.reviews.selectors import QueueFilter, QueueOrdering

# The case page's parameter holding the query string of the queue it was opened from.
CASE_PAGE_PARAMETER = "queue"


@dataclass(frozen=True)
class QueueQuery:
    """A queue's filters and order, as the queue page's URL carries them."""

    state: QueueFilter = QueueFilter.UNREVIEWED
    ordering: QueueOrdering = QueueOrdering.PROBABILITY_DESC
    flagged_from: dt.date | None = None
    flagged_to: dt.date | None = None

    @classmethod
    def from_form(cls, form: QueueFilterForm) -> QueueQuery:
        """The query of a valid filter form; blank fields take the queue's defaults."""
        data = form.cleaned_data
        return cls(
            state=QueueFilter(data.get("state") or QueueFilter.UNREVIEWED),
            ordering=QueueOrdering(data.get("ordering") or QueueOrdering.PROBABILITY_DESC),
            flagged_from=data.get("flagged_from"),
            flagged_to=data.get("flagged_to"),
        )

    @classmethod
    def parse(cls, text: str) -> QueueQuery:
        """Read a queue's query string as carried from page to page; a malformed or refused
        one is the default queue (it came back from a URL, not from someone typing it)."""
        form = QueueFilterForm(QueryDict(text))
        return cls.from_form(form) if form.is_valid() else cls()

    def urlencode(self) -> str:
        """The query string again, without the defaults, so that it stays short."""
        query = QueryDict(mutable=True)
        if self.state != QueueFilter.UNREVIEWED:
            query["state"] = self.state
        if self.ordering != QueueOrdering.PROBABILITY_DESC:
            query["ordering"] = self.ordering
        if self.flagged_from is not None:
            query["flagged_from"] = self.flagged_from.isoformat()
        if self.flagged_to is not None:
            query["flagged_to"] = self.flagged_to.isoformat()
        return query.urlencode()

    def queue_url(self) -> str:
        """The queue page, as filtered and ordered."""
        return _with_query(reverse("reviews:queue"), self.urlencode())

    def next_url(self) -> str:
        """Where "next" goes: the first case of this queue that no one holds."""
        return _with_query(reverse("reviews:next"), self.urlencode())

    def case_url(self, case_id: int) -> str:
        """A case's page opened from this queue, which it carries for "next"."""
        encoded = self.urlencode()
        parameter = f"{CASE_PAGE_PARAMETER}={quote(encoded, safe='')}" if encoded else ""
        return _with_query(reverse("cases:detail", args=[case_id]), parameter)

    def as_kwargs(self) -> dict[str, Any]:
        """The query as the queue selectors' and services' keyword arguments."""
        return {
            "state": self.state,
            "ordering": self.ordering,
            "flagged_from": self.flagged_from,
            "flagged_to": self.flagged_to,
        }


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url
