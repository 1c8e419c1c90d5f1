"""Interactions: INTERACTION_CREATE payloads, the callback endpoint, and the
interaction webhook routes (@original, follow-ups)."""

from __future__ import annotations

import time
from typing import Any

from .discord_messages import (
    INTERACTION_PARSE,
    ApiError,
    Body,
    create_message,
    edit_message,
    form_error,
)
from .discord_ratelimit import BucketSpec
from .discord_rest import Ctx, Handler, Reply, RestApi
from .discord_state import MESSAGE_FLAG_LOADING, Channel, InteractionRecord, Message
from .discord_world import World

# Callback types each interaction type accepts (PING 1, COMMAND 2, COMPONENT 3,
# AUTOCOMPLETE 4, MODAL_SUBMIT 5).
_VALID_CALLBACKS: dict[int, set[int]] = {
    1: {1},
    2: {4, 5, 9},
    3: {4, 5, 6, 7, 9},
    4: {8},
    5: {4, 5, 6, 7},
}


def interaction_payload(
    world: World,
    *,
    interaction_id: int,
    token: str,
    itype: int,
    data: dict[str, Any],
    user_id: int,
    channel: Channel,
    permissions: int,
    message: Message | None = None,
) -> dict[str, Any]:
    channel_data = world.channel_payload(channel)
    channel_data["permissions"] = str(permissions)
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(world.application_id),
        "type": itype,
        "data": data,
        "token": token,
        "version": 1,
        "channel_id": str(channel.id),
        "channel": channel_data,
        "app_permissions": str(world.bot_permissions(channel)),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if channel.guild_id is not None:
        guild = world.guilds[channel.guild_id]
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=world.member_payload(guild.members[user_id], permissions=permissions),
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,
        )
    else:
        payload.update(
            user=world.user_payload(world.users[user_id]),
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    if message is not None:
        payload["message"] = world.message_payload(message)
    return payload


class InteractionApi:
    def __init__(self, rest: RestApi) -> None:
        self.rest = rest
        self.world = rest.world
        cfg = rest.config

        def callback_bucket(params: dict[str, str]) -> tuple[BucketSpec, str]:
            major = f"{params['interaction_id']}+{params['interaction_token']}"
            return BucketSpec("interaction_callback", 50, 1.0, enforced=False), major

        def webhook_bucket(params: dict[str, str]) -> tuple[BucketSpec, str]:
            # One bucket per (application, token): every message of an interaction shares it.
            major = f"{params['webhook_id']}+{params['webhook_token']}"
            return BucketSpec("interaction_webhook", cfg.edit_limit, cfg.edit_window), major

        rest.add(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            self._tracking(self.callback),
            auth=False,
            bucket=callback_bucket,
            is_callback=True,
        )
        base = "/webhooks/{webhook_id}/{webhook_token}"
        rest.add("POST", base, self._tracking(self.followup), auth=False, bucket=webhook_bucket)
        for method, handler in (("GET", self.get), ("PATCH", self.patch), ("DELETE", self.delete)):
            rest.add(
                method,
                base + "/messages/{message_id}",
                self._tracking(handler),
                auth=False,
                bucket=webhook_bucket,
            )

    def _tracking(self, handler: Handler) -> Handler:
        """Keep every error the bot got on an interaction's record."""

        async def wrapped(ctx: Ctx) -> Reply:
            try:
                return await handler(ctx)
            except ApiError as exc:
                token = ctx.params.get("interaction_token") or ctx.params.get("webhook_token") or ""
                rec = self.world.interactions_by_token.get(token)
                if rec is not None:
                    rec.errors.append(exc.body)
                    self.world.notifier.notify()
                raise

        return wrapped

    # ----- callback ---------------------------------------------------------

    async def callback(self, ctx: Ctx) -> Reply:
        world = self.world
        rec = world.interactions.get(ctx.snowflake("interaction_id"))
        if rec is None or rec.token != ctx.params["interaction_token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        if rec.acked:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - rec.dispatched_at > self.rest.config.ack_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        payload = ctx.body.json if isinstance(ctx.body.json, dict) else {}
        rtype = payload.get("type")
        valid = _VALID_CALLBACKS[rec.type]
        if rtype not in valid:
            raise form_error(
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_CHOICES",
                                "message": f"Value must be one of {sorted(valid)}.",
                            }
                        ]
                    }
                }
            )
        data = payload.get("data") or {}
        channel = world.channels[rec.channel_id]
        body = Body(json=data, files=ctx.body.files)
        msg: Message | None = None
        try:
            if rtype == 4 or rtype == 5:
                loading = rtype == 5
                msg = create_message(
                    world,
                    channel,
                    world.bot_user.id,
                    Body(json={"flags": int(data.get("flags") or 0) & 64}) if loading else body,
                    default_parse=INTERACTION_PARSE,
                    msg_type=20 if rec.type == 2 else 0,
                    webhook_id=world.application_id,
                    interaction_id=rec.id,
                    extra_flags=MESSAGE_FLAG_LOADING if loading else 0,
                    allow_empty=loading,
                )
                self.rest.gateway.dispatch_message("MESSAGE_CREATE", msg)
            elif rtype in (6, 7):
                msg = self._component_message(rec)
                if rtype == 7:
                    edit_message(world, msg, body, default_parse=INTERACTION_PARSE)
                    self.rest.gateway.dispatch_message("MESSAGE_UPDATE", msg)
            elif rtype == 8:
                rec.autocomplete_choices = _validated_choices(data)
            elif rtype == 9:
                rec.modal = _validated_modal(data)
        except ApiError as exc:
            if "errors" in exc.body:
                exc.body["errors"] = {"data": exc.body["errors"]}
            raise
        rec.acked_at = time.monotonic()
        rec.ack_type = rtype
        if msg is not None:
            rec.original = msg
            rec.ephemeral = msg.ephemeral
        world.notifier.notify()
        if ctx.query.get("with_response") not in ("1", "true", "True"):
            return Reply(status=204)
        interaction: dict[str, Any] = {"id": str(rec.id), "type": rec.type}
        resource: dict[str, Any] = {"type": rtype}
        if msg is not None:
            interaction.update(
                response_message_id=str(msg.id),
                response_message_loading=msg.loading,
                response_message_ephemeral=msg.ephemeral,
            )
            resource["message"] = world.message_payload(msg)
        return Reply(body={"interaction": interaction, "resource": resource})

    def _component_message(self, rec: InteractionRecord) -> Message:
        msg = self.world.messages.get(rec.message_id or 0)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    # ----- webhook routes ---------------------------------------------------

    def _record(self, ctx: Ctx) -> InteractionRecord:
        rec = self.world.interactions_by_token.get(ctx.params["webhook_token"])
        if rec is None or ctx.snowflake("webhook_id") != self.world.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - rec.dispatched_at > self.rest.config.token_ttl:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if not rec.acked:
            raise ApiError(404, 10015, "Unknown Webhook")
        return rec

    def _target(self, rec: InteractionRecord, ctx: Ctx) -> Message:
        mid = ctx.params["message_id"]
        msg: Message | None
        if mid == "@original":
            msg = rec.original
        else:
            found = self.world.messages.get(int(mid)) if mid.isdigit() else None
            msg = (
                found
                if found is not None and (found is rec.original or found in rec.followups)
                else None
            )
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def followup(self, ctx: Ctx) -> Reply:
        world = self.world
        rec = self._record(ctx)
        original = rec.original
        if rec.ack_type == 5 and original is not None and original.loading and not original.deleted:
            # Discord's quirk: the first follow-up after a deferral replaces the
            # "thinking..." message instead of posting a new one.
            msg = edit_message(world, original, ctx.body, default_parse=INTERACTION_PARSE)
            self.rest.gateway.dispatch_message("MESSAGE_UPDATE", msg)
        else:
            msg = create_message(
                world,
                world.channels[rec.channel_id],
                world.bot_user.id,
                ctx.body,
                default_parse=INTERACTION_PARSE,
                webhook_id=world.application_id,
                interaction_id=rec.id,
            )
            rec.followups.append(msg)
            self.rest.gateway.dispatch_message("MESSAGE_CREATE", msg)
        world.notifier.notify()
        if ctx.query.get("wait") in ("1", "true", "True"):
            return Reply(body=world.message_payload(msg))
        return Reply(status=204)

    async def get(self, ctx: Ctx) -> Reply:
        rec = self._record(ctx)
        return Reply(body=self.world.message_payload(self._target(rec, ctx)))

    async def patch(self, ctx: Ctx) -> Reply:
        rec = self._record(ctx)
        msg = edit_message(
            self.world, self._target(rec, ctx), ctx.body, default_parse=INTERACTION_PARSE
        )
        self.rest.gateway.dispatch_message("MESSAGE_UPDATE", msg)
        return Reply(body=self.world.message_payload(msg))

    async def delete(self, ctx: Ctx) -> Reply:
        rec = self._record(ctx)
        msg = self._target(rec, ctx)
        msg.deleted = True
        self.rest.gateway.dispatch_message("MESSAGE_DELETE", msg)
        self.world.notifier.notify()
        return Reply(status=204)


def _validated_choices(data: dict[str, Any]) -> list[dict[str, Any]]:
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise form_error(
            {
                "choices": {
                    "_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]
                }
            }
        )
    errors: dict[str, Any] = {}
    if len(choices) > 25:
        errors["_errors"] = [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}
        ]
    for i, choice in enumerate(choices):
        name = choice.get("name")
        value = choice.get("value")
        cerr: dict[str, Any] = {}
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            cerr["name"] = {
                "_errors": [
                    {
                        "code": "BASE_TYPE_BAD_LENGTH",
                        "message": "Must be between 1 and 100 in length.",
                    }
                ]
            }
        if isinstance(value, str) and len(value) > 100:
            cerr["value"] = {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 100 or fewer in length."}
                ]
            }
        if cerr:
            errors[str(i)] = cerr
    if errors:
        raise form_error({"choices": errors})
    return choices


def _validated_modal(data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        errors["title"] = {
            "_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 45 in length."}
            ]
        }
    cid = data.get("custom_id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
        errors["custom_id"] = {
            "_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 100 in length."}
            ]
        }
    if not 1 <= len(data.get("components") or []) <= 5:
        errors["components"] = {
            "_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 5 in length."}
            ]
        }
    if errors:
        raise form_error(errors)
    return data
