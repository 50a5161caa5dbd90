from collections import Counter

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from entities_app.services import entities_purge_deleted
from knowledge_app.services import knowledge_purge_deleted
from memories_app.services import purge_deleted
from memoryrelay_site.commands import DatabaseCommand

MAX_DAYS = 36_500  # a century: further back than any row, and within what dates can hold


def days(value: str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_DAYS:
        raise ValueError(value)
    return number


class Command(DatabaseCommand):
    """Lives in the highest app, which may import every app's purge service: decisions and
    patterns first, then entities (with their links), then memories, sessions and agents."""

    help = (
        "Remove for good the decisions, patterns, entities (with their links to memories), "
        "memories, sessions, agents, projects and project relationships "
        "soft-deleted more than "
        "--older-than-days ago (default: MEMORYRELAY_RETENTION_DAYS), and the record of "
        "webhook deliveries settled before then. A deleted session or agent that another "
        "row still names (a live memory, a decision) stays until that row goes: a purge "
        "changes no row it does not remove. --dry-run does the work and undoes it, so its "
        "counts are exact, what goes along with the rows included."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=str,
                            default=str(settings.MEMORYRELAY_RETENTION_DAYS))
        parser.add_argument("--dry-run", action="store_true", help="report counts, change nothing")

    def handle(self, *args, older_than_days: str, dry_run: bool, **options):
        try:
            retention = days(older_than_days)
        except ValueError:
            raise CommandError(
                f"--older-than-days must be a whole number of days, 0 to {MAX_DAYS}") from None
        with transaction.atomic():  # one run, and a dry run undone whole: its counts exact
            knowledge = knowledge_purge_deleted(older_than_days=retention)
            entities = entities_purge_deleted(older_than_days=retention)
            report = purge_deleted(older_than_days=retention)
            if dry_run:
                transaction.set_rollback(True)
        verb = "Would purge" if dry_run else "Purged"
        self.stdout.write(
            f"{verb} {report.memories} memories, {report.sessions} sessions, "
            f"{report.agents} agents, {knowledge.decisions} decisions, "
            f"{knowledge.patterns} patterns, {report.projects} projects, "
            f"{report.project_relationships} project relationships, {entities.entities} "
            f"entities ({entities.links} links) "
            f"deleted more than {retention} days ago, and {report.webhook_deliveries} "
            "webhook deliveries settled before then."
        )
        with_them = Counter(knowledge.along) + Counter(report.along)  # links of memories...
        if with_them:
            self.stdout.write("Along with them: " + ", ".join(
                f"{count} {apps.get_model(label)._meta.verbose_name_plural}"
                for label, count in sorted(with_them.items())) + ".")
