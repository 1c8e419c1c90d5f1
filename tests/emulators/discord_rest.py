"""REST API of the emulator: routing, auth, rate limits, recording, and the bot-token
routes (users, application, commands, channels, guilds). Interaction callbacks and
webhook routes live in discord_interactions.py."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import MultiMapping

from .discord_cdn import Cdn
from .discord_commands import validate_commands
from .discord_gateway import Gateway
from .discord_messages import (
    ALL_PARSE,
    ApiError,
    Body,
    create_message,
    edit_message,
    form_error,
    read_body,
)
from .discord_ratelimit import (
    BucketSpec,
    RateLimiter,
    global_too_many_headers,
    too_many_headers,
)
from .discord_state import Channel, Message, Permission, RecordedCall, has_permission
from .discord_world import World

log = logging.getLogger(__name__)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # None: an empty 204


@dataclass
class Ctx:
    request: web.Request
    params: dict[str, str]
    body: Body
    query: MultiMapping[str]

    def snowflake(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError as exc:
            raise form_error(
                {
                    name: {
                        "_errors": [
                            {"code": "NUMBER_TYPE_COERCE", "message": "Value is not snowflake."}
                        ]
                    }
                }
            ) from exc


Handler = Callable[[Ctx], Awaitable[Reply]]
BucketFn = Callable[[dict[str, str]], tuple[BucketSpec, str]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    auth: bool = True
    bucket: BucketFn | None = None
    is_callback: bool = False
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.regex = re.compile(f"^{pattern}$")


@dataclass
class RestConfig:
    token: str
    edit_limit: int
    edit_window: float
    ack_deadline: float
    token_ttl: float


def _too_many(retry_after: float, *, scope_global: bool) -> dict[str, Any]:
    return {
        "message": "You are being rate limited.",
        "retry_after": round(retry_after, 3),
        "global": scope_global,
    }


def _missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def _missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


class RestApi:
    def __init__(self, world: World, gateway: Gateway, config: RestConfig) -> None:
        self.world = world
        self.gateway = gateway
        self.config = config
        self.limiter = RateLimiter()
        self.calls: list[RecordedCall] = []
        self.typing: list[tuple[float, int]] = []
        self.routes: list[Route] = []
        self.cdn = Cdn(world)
        self.internal_errors: list[Exception] = []
        self._add_bot_routes()

    @property
    def cdn_downloads(self) -> int:
        """CDN fetches answered 200 (kept for older tests; see ``cdn.fetches``)."""
        return self.cdn.downloads

    # ----- routing pipeline -------------------------------------------------

    def add(self, method: str, template: str, handler: Handler, **kw: Any) -> None:
        self.routes.append(Route(method, template, handler, **kw))

    def _default_bucket(self, route: Route, params: dict[str, str]) -> tuple[BucketSpec, str]:
        spec = BucketSpec(f"{route.method} {route.template}", 50, 1.0)
        major = params.get("channel_id") or params.get("guild_id") or ""
        return spec, major

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
            allowed = True
        if allowed:
            raise ApiError(405, 0, "405: Method Not Allowed")
        raise ApiError(404, 0, "404: Not Found")

    async def handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        started = time.monotonic()
        headers: dict[str, str] = {}
        route_template = ""
        bucket_hash: str | None = None
        body = Body()
        try:
            route, params = self._match(request.method, path)
            route_template = route.template
            if route.auth and request.headers.get("Authorization") != f"Bot {self.config.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            spec, major = (route.bucket or (lambda p: self._default_bucket(route, p)))(params)
            bucket_hash = spec.hash
            body = await read_body(request)
            forced = self.limiter.take_forced(path, is_callback=route.is_callback)
            exempt = route.is_callback or path.startswith(("/webhooks/", "/interactions/"))
            global_wait = None if forced is not None or exempt else self.limiter.check_global()
            wait = global_wait
            if wait is None:
                wait = forced if forced is not None else self.limiter.check(spec, major)
                headers.update(self.limiter.headers(spec, major))
            if global_wait is not None:
                headers.update(global_too_many_headers(global_wait))
                reply = Reply(429, _too_many(global_wait, scope_global=True))
            elif wait is not None:
                headers.update(too_many_headers(wait))
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset-After"] = f"{wait:.3f}"
                headers["X-RateLimit-Reset"] = f"{time.time() + wait:.3f}"
                reply = Reply(429, _too_many(wait, scope_global=False))
            else:
                reply = await route.handler(Ctx(request, params, body, request.query))
        except ApiError as exc:
            reply = Reply(exc.status, exc.body)
        except Exception as exc:  # an emulator bug: keep it for stop() to raise
            log.exception("emulator error on %s %s", request.method, path)
            self.internal_errors.append(exc)
            reply = Reply(500, {"message": "500: Internal Server Error", "code": 0})
        self.calls.append(
            RecordedCall(
                at=started,
                method=request.method,
                path=path,
                route=route_template,
                query=dict(request.query),
                json=body.json,
                files=[(f.field, f.filename, len(f.data)) for f in body.files],
                status=reply.status,
                headers=dict(headers),
                response=reply.body,
                bucket=bucket_hash,
            )
        )
        self.world.notifier.notify()
        if reply.body is None:
            return web.Response(
                status=204 if reply.status == 200 else reply.status, headers=headers
            )
        # Exactly "application/json": discord.py compares the header strictly and
        # aiohttp's text=/json_response would append "; charset=utf-8".
        return web.Response(
            status=reply.status,
            body=json.dumps(reply.body).encode(),
            content_type="application/json",
            headers=headers,
        )

    # ----- helpers ----------------------------------------------------------

    def channel(self, ctx: Ctx, *, need: int = int(Permission.VIEW_CHANNEL)) -> Channel:
        channel = self.world.channels.get(ctx.snowflake("channel_id"))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        perms = self.world.bot_permissions(channel)
        if not has_permission(perms, Permission.VIEW_CHANNEL):
            raise _missing_access()
        if not has_permission(perms, need):
            raise _missing_permissions()
        return channel

    def message_in(self, channel: Channel, ctx: Ctx) -> Message:
        msg = self.world.messages.get(ctx.snowflake("message_id"))
        if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _message_bucket(self, name: str) -> BucketFn:
        def fn(params: dict[str, str]) -> tuple[BucketSpec, str]:
            return BucketSpec(name, self.config.edit_limit, self.config.edit_window), params[
                "channel_id"
            ]

        return fn

    # ----- bot routes -------------------------------------------------------

    def _add_bot_routes(self) -> None:
        add = self.add
        add("GET", "/users/@me", self.get_me)
        add("GET", "/users/{user_id}", self.get_user)
        add("POST", "/users/@me/channels", self.create_dm)
        add("GET", "/oauth2/applications/@me", self.get_application)
        add("GET", "/applications/@me", self.get_application)
        add("GET", "/gateway", self.get_gateway, auth=False)
        add("GET", "/gateway/bot", self.get_gateway_bot)
        for tpl in (
            "/applications/{application_id}/commands",
            "/applications/{application_id}/guilds/{guild_id}/commands",
        ):
            add("GET", tpl, self.get_commands)
            add("PUT", tpl, self.put_commands)
        add("GET", "/channels/{channel_id}", self.get_channel)
        add("GET", "/channels/{channel_id}/messages", self.get_messages)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        add(
            "POST",
            "/channels/{channel_id}/messages",
            self.post_message,
            bucket=self._message_bucket("channel_message_create"),
        )
        add(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            self.patch_message,
            bucket=self._message_bucket("channel_message_edit"),
        )
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        add("POST", "/channels/{channel_id}/typing", self.post_typing)
        add(
            "PUT",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
            self.put_reaction,
        )
        add(
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
            self.delete_reaction,
        )
        add("GET", "/guilds/{guild_id}", self.get_guild)
        add("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        add("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)

    async def get_me(self, ctx: Ctx) -> Reply:
        return Reply(body=self.world.me_payload())

    async def get_user(self, ctx: Ctx) -> Reply:
        user = self.world.users.get(ctx.snowflake("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return Reply(body=self.world.user_payload(user))

    async def create_dm(self, ctx: Ctx) -> Reply:
        payload = ctx.body.json or {}
        uid = int(payload.get("recipient_id") or 0)
        if uid not in self.world.users:
            raise ApiError(404, 10013, "Unknown User")
        return Reply(body=self.world.channel_payload(self.world.dm_channel(uid)))

    async def get_application(self, ctx: Ctx) -> Reply:
        return Reply(body=self.world.application_payload())

    async def get_gateway(self, ctx: Ctx) -> Reply:
        return Reply(body={"url": self.gateway.url})

    async def get_gateway_bot(self, ctx: Ctx) -> Reply:
        rules = self.gateway.shard_rules
        limit = {
            "total": 1000,
            "remaining": 1000 - self.gateway.identifies,
            "reset_after": 86_400_000,
            "max_concurrency": rules.max_concurrency,
        }
        shards = rules.recommend(len(self.world.guilds))
        return Reply(body={"url": self.gateway.url, "shards": shards, "session_start_limit": limit})

    def _scope(self, ctx: Ctx) -> int | None:
        if ctx.snowflake("application_id") != self.world.application_id:
            raise _missing_access()
        if "guild_id" not in ctx.params:
            return None
        gid = ctx.snowflake("guild_id")
        if gid not in self.world.guilds:
            raise _missing_access()
        return gid

    async def get_commands(self, ctx: Ctx) -> Reply:
        return Reply(body=self.world.registered_commands.get(self._scope(ctx), []))

    async def put_commands(self, ctx: Ctx) -> Reply:
        scope = self._scope(ctx)
        commands = ctx.body.json
        if not isinstance(commands, list):
            raise form_error(
                {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]}
            )
        errors = validate_commands(commands)
        if errors:
            raise form_error(errors)
        registered = []
        for cmd in commands:
            ctype = int(cmd.get("type") or 1)
            out = {
                "id": str(self.world.command_id(scope, cmd["name"], ctype)),
                "application_id": str(self.world.application_id),
                "version": str(self.world.ids.next()),
                "type": ctype,
                "name": cmd["name"],
                "description": cmd.get("description") or "",
                "options": cmd.get("options") or [],
                "default_member_permissions": cmd.get("default_member_permissions"),
                "dm_permission": cmd.get("dm_permission", True),
                "nsfw": bool(cmd.get("nsfw", False)),
                "contexts": cmd.get("contexts"),
                "integration_types": cmd.get("integration_types") or [0],
                "name_localizations": cmd.get("name_localizations"),
                "description_localizations": cmd.get("description_localizations"),
            }
            if scope is not None:
                out["guild_id"] = str(scope)
            registered.append(out)
        self.world.registered_commands[scope] = registered
        return Reply(body=registered)

    async def get_channel(self, ctx: Ctx) -> Reply:
        return Reply(body=self.world.channel_payload(self.channel(ctx)))

    async def get_messages(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx)
        try:
            limit = int(ctx.query.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            raise form_error(
                {
                    "limit": {
                        "_errors": [
                            {
                                "code": "NUMBER_TYPE_MAX",
                                "message": "int value should be less than or equal to 100.",
                            }
                        ]
                    }
                }
            )
        if not has_permission(self.world.bot_permissions(channel), Permission.READ_MESSAGE_HISTORY):
            # Documented: without READ_MESSAGE_HISTORY the list is simply empty.
            return Reply(body=[])
        msgs = [self.world.messages[m] for m in channel.message_ids]
        msgs = [m for m in msgs if not m.deleted and not m.ephemeral]
        if "before" in ctx.query:
            before = int(ctx.query["before"])
            msgs = [m for m in msgs if m.id < before][-limit:]
        elif "after" in ctx.query:
            after = int(ctx.query["after"])
            msgs = [m for m in msgs if m.id > after][:limit]
        elif "around" in ctx.query:
            around = int(ctx.query["around"])
            older = [m for m in msgs if m.id <= around][-(limit - limit // 2) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        # Newest first, as Discord returns them.
        return Reply(body=[self.world.message_payload(m) for m in reversed(msgs)])

    async def get_message(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx)
        if not has_permission(self.world.bot_permissions(channel), Permission.READ_MESSAGE_HISTORY):
            raise _missing_access()
        return Reply(body=self.world.message_payload(self.message_in(channel, ctx)))

    async def post_message(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx, need=int(Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES))
        if ctx.body.files and not has_permission(
            self.world.bot_permissions(channel), Permission.ATTACH_FILES
        ):
            raise _missing_permissions()
        msg = create_message(
            self.world, channel, self.world.bot_user.id, ctx.body, default_parse=ALL_PARSE
        )
        self.gateway.dispatch_message("MESSAGE_CREATE", msg)
        return Reply(body=self.world.message_payload(msg))

    async def patch_message(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx)
        msg = self.message_in(channel, ctx)
        # The bot may also edit its application's public interaction responses here (the
        # way to reach them once the interaction's token expired); not other webhooks'
        # messages. Ephemeral ones are "Unknown Message" (message_in).
        interaction_reply = (
            msg.interaction_id is not None and msg.webhook_id == self.world.application_id
        )
        if msg.author_id != self.world.bot_user.id or (
            msg.webhook_id is not None and not interaction_reply
        ):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        edit_message(self.world, msg, ctx.body, default_parse=ALL_PARSE)
        self.gateway.dispatch_message("MESSAGE_UPDATE", msg)
        return Reply(body=self.world.message_payload(msg))

    async def delete_message(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx)
        msg = self.message_in(channel, ctx)
        own = msg.author_id == self.world.bot_user.id and msg.webhook_id is None
        if not own and not has_permission(
            self.world.bot_permissions(channel), Permission.MANAGE_MESSAGES
        ):
            raise _missing_permissions()
        msg.deleted = True
        self.gateway.dispatch_message("MESSAGE_DELETE", msg)
        return Reply(status=204)

    async def post_typing(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx, need=int(Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES))
        self.typing.append((time.monotonic(), channel.id))
        return Reply(status=204)

    async def put_reaction(self, ctx: Ctx) -> Reply:
        channel = self.channel(
            ctx, need=int(Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        )
        msg = self.message_in(channel, ctx)
        emoji = ctx.params["emoji"]
        if emoji not in msg.reactions:
            if not has_permission(self.world.bot_permissions(channel), Permission.ADD_REACTIONS):
                raise _missing_permissions()
            msg.reactions.append(emoji)
        return Reply(status=204)

    async def delete_reaction(self, ctx: Ctx) -> Reply:
        channel = self.channel(ctx)
        msg = self.message_in(channel, ctx)
        if ctx.params["emoji"] in msg.reactions:
            msg.reactions.remove(ctx.params["emoji"])
        return Reply(status=204)

    def _guild(self, ctx: Ctx) -> Any:
        guild = self.world.guilds.get(ctx.snowflake("guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        body = self.world.guild_payload(guild)
        if ctx.query.get("with_counts") in ("true", "1", "True"):
            body.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return Reply(body=body)

    async def get_guild_channels(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        return Reply(
            body=[self.world.channel_payload(self.world.channels[c]) for c in guild.channel_ids]
        )

    async def get_guild_roles(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        return Reply(body=[self.world.role_payload(self.world.roles[r]) for r in guild.role_ids])

    async def get_member(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        member = guild.members.get(ctx.snowflake("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply(body=self.world.member_payload(member))
