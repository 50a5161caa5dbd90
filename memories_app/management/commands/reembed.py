from django.core.management.base import BaseCommand, CommandError

from memories_app.embeddings import get_provider
from memories_app.services import memories_reembed


class Command(BaseCommand):
    help = (
        "Embed the live memories whose vector is missing or was made by another model "
        "(after a model change, or writes made while the provider was down)."
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
        report = memories_reembed(batch_size=batch_size, dry_run=dry_run)
        verb = "Would re-embed" if dry_run else "Re-embedded"
        self.stdout.write(f"{verb} {report.stale} memories with {provider.describe()}"
                          + ("" if dry_run else f"; {report.failed} failed"))
