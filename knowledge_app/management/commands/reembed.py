from django.core.management.base import CommandError

from knowledge_app.services import knowledge_reembed
from memories_app.embeddings import get_provider
from memories_app.services import memories_reembed
from memoryrelay_site import db
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.progress import Progress


class Command(DatabaseCommand):
    """Lives in the highest app, which may import every app's re-embedding service."""

    help = (
        "Embed the live memories, decisions and patterns whose vector is missing or was "
        "made by another model (after a model change, or writes made while the provider "
        "was down)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        provider = get_provider()
        if not provider.available:
            raise CommandError("no embedding provider is configured (MEMORYRELAY_EMBEDDINGS)")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        # Progress (count, rate, time left) on stderr, every few seconds and at the end.
        def progress(total, label="memories"):
            return Progress(self.stderr.write, f"re-embedding {label}", total)

        # One run at a time: a second run read the same stale rows and embedded them again.
        with db.alone("reembed") as first:
            if not first and not dry_run:
                raise CommandError("another reembed is running: this one re-embeds nothing "
                                   "(run it again once that one is done, if rows are stale)")
            report = memories_reembed(batch_size=batch_size, dry_run=dry_run,
                                      progress=progress)
            knowledge = knowledge_reembed(batch_size=batch_size, dry_run=dry_run,
                                          progress=progress)
        verb = "Would re-embed" if dry_run else "Re-embedded"
        failed = report.failed + knowledge.failed
        self.stdout.write(f"{verb} {report.stale} memories, {knowledge.decisions} decisions, "
                          f"{knowledge.patterns} patterns with {provider.describe()}"
                          + ("" if dry_run else f"; {failed} failed"))
