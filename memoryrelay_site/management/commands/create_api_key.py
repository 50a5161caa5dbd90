from django.core.management.base import BaseCommand, CommandError

from memoryrelay_site.services import account_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for an account (a Django user, created if needed). "
        "The raw key is printed alone on the last line; it is not stored and cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="account (username); created if missing")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, user: str, name: str, **options):
        if not user.strip():
            raise CommandError("--user must not be blank")
        key, raw = account_key_create(username=user.strip(), name=name)
        self.stdout.write(f"Created API key {key.prefix}… for account {key.user.username!r}.")
        self.stdout.write(raw)
