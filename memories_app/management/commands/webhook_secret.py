"""``manage.py webhook_secret --user NAME``: prints the secret that signs the account's
webhooks (memories_app.webhooks: X-MemoryRelay-Signature, HMAC-SHA256)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from memories_app.webhooks import webhook_secret
from memoryrelay_site.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = "Print the secret that signs an account's webhooks."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The account's username.")

    def handle(self, *, user, **options):
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"no account named {user!r}")
        self.stdout.write(webhook_secret(account=account))
