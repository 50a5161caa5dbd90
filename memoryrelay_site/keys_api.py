"""``/v1/keys``: an account's API keys, managed by an ``admin`` key of that account.

``POST /v1/keys`` answers the raw key once (``key``) beside what is stored of it
(``key_info``); ``GET`` lists or reads the account's keys, revoked ones included, never
their hashes; ``DELETE /v1/keys/{id}`` revokes a key (it answers 401 from then on; revoking
twice keeps the first ``revoked_at``). A key made here is no laxer than the key making it:
it expires no later and its rate limit is no higher."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from .errors import NotFound
from .models import SCOPES, ApiKey
from .serializers import IsoDateTimeField, StrictCharField
from .services import api_key_issue, api_key_revoke
from .views import AccountViewSet, ListMixin

DEFAULT_SCOPES = ["read", "write"]
MAX_EXPIRES_DAYS = 365


class StrictIntegerField(serializers.IntegerField):
    """An integer given as a JSON number: not a string, a boolean or a fraction."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)) or data != int(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class KeyCreateInput(serializers.Serializer):
    name = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES), allow_empty=False, max_length=16,
        required=False, allow_null=True,
        help_text=f"What the key may do (default {DEFAULT_SCOPES}); admin allows everything")
    expires_days = StrictIntegerField(
        min_value=1, max_value=MAX_EXPIRES_DAYS, required=False, allow_null=True,
        help_text="Omitted: when the key making it expires (never, if it does not)")
    rate_limit_per_minute = StrictIntegerField(
        min_value=0, max_value=10**9, required=False, allow_null=True,
        help_text="0: unlimited; null: the server's default; omitted: the making key's. "
                  "No higher than the making key's")

    def validate_scopes(self, scopes):
        return None if scopes is None else list(dict.fromkeys(scopes))  # once each, in order

    def to_internal_value(self, data):
        """Unknown fields are refused here (not ignored, as elsewhere): a misspelt
        ``scope`` or ``expires_in_days`` would make a key that can do more, or never
        expires."""
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [
                    f"unknown field; a key takes {', '.join(self.fields)}"] for name in unknown})
        return super().to_internal_value(data)


class KeyInfoOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    key_prefix = serializers.CharField(source="prefix")
    scopes = serializers.ListField(child=serializers.CharField())
    created_at = IsoDateTimeField()
    last_used_at = IsoDateTimeField(allow_null=True)
    expires_at = IsoDateTimeField(allow_null=True)
    revoked_at = IsoDateTimeField(allow_null=True)
    is_active = serializers.BooleanField()
    rate_limit_per_minute = serializers.IntegerField(allow_null=True)


class KeyCreatedOutput(serializers.Serializer):
    key = serializers.CharField(help_text="The whole key: shown this once, never stored")
    key_info = KeyInfoOutput()


class KeyRevokedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    revoked = serializers.BooleanField()
    revoked_at = IsoDateTimeField()
    key_info = KeyInfoOutput()


class KeyViewSet(ListMixin, AccountViewSet):
    key_scope = "admin"
    serializer_class = KeyInfoOutput
    not_found_message = "API key not found"

    def get_queryset(self):
        return ApiKey.objects.filter(user=self.request.user).order_by("-created_at", "-id")

    def _key(self) -> ApiKey:
        key = self.get_queryset().filter(pk=self.object_id()).first()
        if key is None:  # another account's key too
            raise NotFound(self.not_found_message)
        return key

    @extend_schema(request=KeyCreateInput, responses={201: KeyCreatedOutput})
    def create(self, request):
        given = KeyCreateInput(data=request.data if request.data is not None else {})
        given.is_valid(raise_exception=True)
        data = given.validated_data
        parent = request.auth
        days = data.get("expires_days")
        expires_at = timezone.now() + timedelta(days=days) if days else parent.expires_at
        rate_limit = data.get("rate_limit_per_minute", parent.rate_limit_per_minute)
        key, raw = api_key_issue(
            parent=parent, name=data.get("name") or "",
            scopes=data.get("scopes") or DEFAULT_SCOPES, expires_at=expires_at,
            rate_limit_per_minute=rate_limit)
        response = Response(KeyCreatedOutput({"key": raw, "key_info": key}).data, status=201)
        response["Cache-Control"] = "no-store"  # the raw key, shown this once
        return response

    def retrieve(self, request, pk=None):
        return Response(KeyInfoOutput(self._key()).data)

    @extend_schema(responses={200: KeyRevokedOutput})
    def destroy(self, request, pk=None):
        key = api_key_revoke(key=self._key())
        return Response(KeyRevokedOutput({"id": key.pk, "revoked": True,
                                          "revoked_at": key.revoked_at, "key_info": key}).data)
