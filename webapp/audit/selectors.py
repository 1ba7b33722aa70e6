from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Model, QuerySet
from django.utils import timezone

from webapp.audit.models import AuditAction, AuditEvent

# Every view of a case is an event, so a busy case's history grows without bound; its page
# shows the most recent part (the admin and the database keep all of it).
TIMELINE_LENGTH = 50
# How far back the timeline reads to fill its entries: views fold into one entry each run,
# so it reads well past TIMELINE_LENGTH events, and still a bounded number.
TIMELINE_WINDOW = 20 * TIMELINE_LENGTH

# Reads of a case that fold together on the timeline; what changed the case never does.
VIEW_ACTIONS = frozenset(
    {AuditAction.CASE_VIEWED, AuditAction.IMAGE_VIEWED, AuditAction.PREDICTION_VIEWED}
)


def audit_event_list(*, case: Model, limit: int | None = None) -> QuerySet[AuditEvent]:
    """Return a case's history, newest first, at most `limit` events when given."""
    events = (
        AuditEvent.objects.filter(case_id=case.pk)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )
    return events if limit is None else events[:limit]


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: an event, or a run of views by one person on one day."""

    events: tuple[AuditEvent, ...]

    @property
    def event(self) -> AuditEvent:
        """The newest event of the entry."""
        return self.events[0]

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def grouped(self) -> bool:
        return len(self.events) > 1

    @property
    def first_at(self) -> dt.datetime:
        return self.events[-1].created_at

    @property
    def last_at(self) -> dt.datetime:
        return self.events[0].created_at


@dataclass(frozen=True)
class Timeline:
    entries: list[TimelineEntry]
    # Whether older history exists beyond what the entries show.
    truncated: bool


def _folds_into(entry: list[AuditEvent], event: AuditEvent) -> bool:
    newest = entry[0]
    return (
        event.action in VIEW_ACTIONS
        and newest.action in VIEW_ACTIONS
        and event.actor_id is not None
        and event.actor_id == newest.actor_id
        and timezone.localdate(event.created_at) == timezone.localdate(newest.created_at)
    )


def audit_timeline(
    *, case: Model, length: int = TIMELINE_LENGTH, window: int = TIMELINE_WINDOW
) -> Timeline:
    """Return a case's recent history for reading, newest first, in at most `length` entries.

    Views of the case, its images and scores by one person, one after another on one day,
    fold into one entry ("viewed 14 times by alice"), so that uploads, scores and reviews stand
    out. Only the reading is grouped: every event stays in the history as it was recorded.
    One query, of at most `window` events.
    """
    events = list(audit_event_list(case=case, limit=window + 1))
    truncated = len(events) > window
    runs: list[list[AuditEvent]] = []
    for event in events[:window]:
        if runs and _folds_into(runs[-1], event):
            runs[-1].append(event)
            continue
        if len(runs) == length:
            truncated = True
            break
        runs.append([event])
    return Timeline(entries=[TimelineEntry(events=tuple(run)) for run in runs], truncated=truncated)
