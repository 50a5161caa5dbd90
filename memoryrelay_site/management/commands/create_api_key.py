from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone

from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.models import SCOPES, ApiKey
from memoryrelay_site.services import account_key_create

MAX_EXPIRES_DAYS = 36_500  # a hundred years: past it, dates overflow


class Command(DatabaseCommand):
    help = (
        "Create an API key for an account (a Django user, created if needed). "
        "The raw key is printed alone on the last line; it is not stored and cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="account (username); created if missing")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument("--expires-days", type=int, default=None, metavar="N",
                            help="the key is refused (401, expired) N days from now")
        parser.add_argument("--rate-limit", type=int, default=None, metavar="PER_MINUTE",
                            help="requests per minute for this key (0: unlimited); "
                                 "default: MEMORYRELAY_RATE_LIMIT_PER_MINUTE")
        parser.add_argument("--scopes", default=",".join(SCOPES), metavar="LIST",
                            help="what the key may do, comma-separated among "
                                 f"{', '.join(SCOPES)} (default: all; admin allows everything, "
                                 "/v1/keys included)")

    def handle(self, *args, user: str, name: str, expires_days: int | None,
               rate_limit: int | None, scopes: str, **options):
        if not user.strip():
            raise CommandError("--user must not be blank")
        if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise CommandError(f"--expires-days must be 1 to {MAX_EXPIRES_DAYS}")
        if len(name) > ApiKey._meta.get_field("name").max_length:
            raise CommandError("--name must be at most 255 characters")
        users = get_user_model()
        username_max = users._meta.get_field("username").max_length
        if len(user.strip()) > username_max:
            raise CommandError(f"--user must be at most {username_max} characters")
        if not users.objects.filter(username=user.strip()).exists():
            try:  # a new account's name follows Django's rule, as the admin's form does
                users.username_validator(user.strip())
            except ValidationError as exc:
                raise CommandError(f"--user: {exc.messages[0]}") from None
        if rate_limit is not None and rate_limit < 0:
            raise CommandError("--rate-limit must be 0 (unlimited) or more")
        wanted = list(dict.fromkeys(s.strip() for s in scopes.split(",") if s.strip()))
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown or not wanted:
            raise CommandError(f"--scopes must list some of {', '.join(SCOPES)}"
                               + (f" (not {', '.join(unknown)})" if unknown else ""))
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        key, raw = account_key_create(username=user.strip(), name=name, expires_at=expires_at,
                                      rate_limit_per_minute=rate_limit, scopes=wanted)
        expiry = f", expires {expires_at:%Y-%m-%dT%H:%M:%SZ}" if expires_at else ""
        self.stdout.write(
            f"Created API key {key.prefix}… for account {key.user.username!r}{expiry}, "
            f"scopes {', '.join(key.scopes)}.")
        self.stdout.write(raw)
