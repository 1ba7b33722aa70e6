from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webapp.casework.seed import cases_seed


class Command(BaseCommand):
    help = (
        "Seed cases with images, scores and reviews for load tests and benchmarks "
        "(never on a production database). Idempotent: tops up to --count seeded cases."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100_000, help="seeded cases wanted")
        parser.add_argument(
            "--reset", action="store_true", help="delete earlier seeded cases first"
        )
        parser.add_argument("--chunk-size", type=int, default=5000, help="rows per bulk insert")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = cases_seed(
            count=options["count"], reset=options["reset"], chunk_size=options["chunk_size"]
        )
        self.stdout.write(
            f"{summary.cases} seeded cases ({summary.created} new); {summary.flagged} in the "
            f"reviewer queue, {summary.unreviewed} of them awaiting review."
        )
