"""``/v1/extraction``: an account's extraction settings and its own LLM provider keys (the
SDK 0.4.0 ``extraction`` resource). A key is taken once and never answered back: every
answer shows ``masked_key``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryrelay_site.errors import NotFound
from memoryrelay_site.serializers import IsoDateTimeField, MetadataField, StrictCharField, is_uuid
from sessions_app.serializers import DeletedOutput
from sessions_app.views import NoBodyInput, validated

from . import byok
from .models_byok import Provider

KEY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                          description="Extraction key ID")


class ByokKeyInput(serializers.Serializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    api_key = StrictCharField(max_length=byok.API_KEY_MAX, help_text="Stored encrypted; "
                              "never answered back")
    model = StrictCharField(max_length=255)
    label = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    base_url = serializers.URLField(max_length=2000, required=False, allow_null=True,
                                    allow_blank=True, help_text="An OpenAI-compatible API "
                                    "base; required for azure and custom")


class ByokKeyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    provider = serializers.CharField()
    label = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    base_url = serializers.CharField(allow_null=True)
    is_active = serializers.BooleanField()
    masked_key = serializers.CharField()
    last_validated_at = IsoDateTimeField(allow_null=True)
    last_used_at = IsoDateTimeField(allow_null=True)
    created_at = IsoDateTimeField()
    updated_at = IsoDateTimeField()

    def to_representation(self, key):
        body = super().to_representation(key)
        body["label"] = key.label or None
        body["base_url"] = key.base_url or None
        return body


class ExtractionSettingsOutput(serializers.Serializer):
    tier = serializers.CharField()
    extractor = serializers.CharField()
    byok_enabled_globally = serializers.BooleanField()
    byok_configured = serializers.BooleanField()
    byok_active = serializers.BooleanField()
    masked_api_key = serializers.CharField(allow_null=True)
    preferred_model = serializers.CharField()
    base_url = serializers.CharField(allow_blank=True)
    last_validated_at = IsoDateTimeField(allow_null=True)
    plan_limits = MetadataField()
    keys = ByokKeyOutput(many=True)


class DeactivatedOutput(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField()
    deactivated_count = serializers.IntegerField()


def _key_id(pk: str) -> str:
    if not is_uuid(pk):
        raise NotFound("Extraction key not found")
    return pk


class AccountSettingsView(APIView):
    """The account's extraction settings and provider keys: an ``admin`` key's business."""

    key_scope = "admin"


class ExtractionSettingsView(AccountSettingsView):
    @extend_schema(responses=ExtractionSettingsOutput)
    def get(self, request):
        return Response(ExtractionSettingsOutput(byok.byok_settings(account=request.user)).data)


class ExtractionKeysView(AccountSettingsView):
    @extend_schema(request=ByokKeyInput, responses={201: ByokKeyOutput})
    def post(self, request):
        data = validated(ByokKeyInput, request.data)
        key = byok.byok_key_create(account=request.user, **data)
        return Response(ByokKeyOutput(key).data, status=201)


class ExtractionKeyActivateView(AccountSettingsView):
    @extend_schema(request=None, parameters=[KEY_ID], responses=ByokKeyOutput)
    def post(self, request, pk: str):
        validated(NoBodyInput, request.data)
        key = byok.byok_key_activate(account=request.user, key_id=_key_id(pk))
        return Response(ByokKeyOutput(key).data)


class ExtractionKeysDeactivateView(AccountSettingsView):
    @extend_schema(request=None, responses=DeactivatedOutput)
    def post(self, request):
        validated(NoBodyInput, request.data)
        count = byok.byok_deactivate_all(account=request.user)
        return Response(DeactivatedOutput({
            "status": "ok", "deactivated_count": count,
            "message": f"Deactivated {count} key(s). Extraction uses the server's own "
                       "extractor now."}).data)


class ExtractionKeyView(AccountSettingsView):
    @extend_schema(parameters=[KEY_ID], responses={200: DeletedOutput})
    def delete(self, request, pk: str):
        at = byok.byok_key_delete(account=request.user, key_id=_key_id(pk))
        return Response(DeletedOutput({"id": pk, "deleted": True, "deleted_at": at}).data)
